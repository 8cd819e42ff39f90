// Package schema holds Cairn's knowledge of the OpenAI wire format and of
// response contracts.
//
// The wire half reads request fields from raw bodies with gjson (never a full
// json.Unmarshal on the default path), rewrites a request body by splicing
// bytes, builds OpenAI-shaped error JSON, frames Server-Sent Events
// incrementally (SSEParser) and folds chat.completion.chunk events into the
// final message (StreamAccumulator).
//
// The contract half compiles and caches JSON Schemas (Contracts), and judges a
// final message or an accumulated stream against everything that applies to
// one request (Contract): the route's schema file, the request's
// response_format and its tools and tool_choice. A verdict names the place
// that failed (`/confidence: missing property`,
// `tool_calls[0].arguments: invalid JSON at offset 12`).
//
// The package works on []byte only; it imports no HTTP library and nothing of
// Cairn's except configs.
package schema
