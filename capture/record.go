// Package capture owns the capture record (one per request), PII masking,
// the asynchronous writer and its sinks (JSONL files, Redis stream), lookup
// by any request ID, and the gateway's metrics and tracing.
package capture

import (
	"encoding/json"
	"time"
)

// Outcomes of a request, as recorded in Record.Outcome.
const (
	OutcomeOK            = "ok"
	OutcomeUpstreamError = "upstream_error" // 5xx, connect error, broken stream
	OutcomeUpstream4xx   = "upstream_4xx"   // the provider refused the request (relayed)
	OutcomeUpstream429   = "upstream_rate_limited"
	OutcomeTimeout       = "timeout"
	OutcomeContractFail  = "contract_fail"
	OutcomeRateLimited   = "rate_limited" // the key's own budget
	OutcomeBadRequest    = "bad_request"
	OutcomeUnauthorized  = "unauthorized"
	OutcomeForbidden     = "forbidden"
	OutcomeNotFound      = "not_found"
	OutcomeClientClosed  = "client_closed"
	OutcomeOverloaded    = "overloaded"
	OutcomeInternalError = "internal_error"
	// OutcomeShutdown: a stream still open at the drain deadline, ended
	// with a server_shutting_down SSE error event.
	OutcomeShutdown = "shutdown"
)

// Contract verdicts.
const (
	VerdictPass = "pass"
	VerdictFail = "fail"
	VerdictNone = "none"
)

// Record is everything known about one request. Its JSON field names are
// fixed: tools, tests and incidents read them. Every string that came from a
// client or a provider is masked before the record leaves the writer.
//
// A Record handed to Writer.Enqueue is owned by the writer from then on: the
// caller must not touch it again. Records delivered to observers are
// read-only and shared.
type Record struct {
	GatewayRequestID  string `json:"gateway_request_id"`
	ProviderRequestID string `json:"provider_request_id,omitempty"`
	ClientRequestID   string `json:"client_request_id,omitempty"`
	// ClientRequestIDHash is the keyed hash (HMAC-SHA-256, 128 bits, hex)
	// of the raw client request ID, which the record stores only masked:
	// lookups by client ID go through it (issue 12.14).
	ClientRequestIDHash string    `json:"client_request_id_hash,omitempty"`
	TraceID             string    `json:"trace_id,omitempty"`
	ReceivedAt          time.Time `json:"received_at"`

	Key            string         `json:"key,omitempty"` // the key's name, never its secret
	Client         string         `json:"client,omitempty"`
	Endpoint       string         `json:"endpoint"` // chat.completions, embeddings, models
	Route          string         `json:"route,omitempty"`
	Cohort         string         `json:"cohort,omitempty"`
	Provider       string         `json:"provider,omitempty"`
	Model          string         `json:"model,omitempty"`
	Target         string         `json:"target,omitempty"` // the configured target: "provider/model", "provider/*" when it passes the client's model through (issue 12.7: metrics and detection use it, never the client's string)
	RequestedModel string         `json:"requested_model,omitempty"`
	PromptVersion  string         `json:"prompt_version,omitempty"`
	Flags          map[string]any `json:"flags,omitempty"`
	Release        string         `json:"release,omitempty"`
	ConfigRevision string         `json:"config_revision,omitempty"`
	Params         Params         `json:"params"`
	// UserHash is a keyed hash of the request's user (else
	// safety_identifier), see UserHasher; never the value itself.
	UserHash string `json:"user_hash,omitempty"`

	Status   int       `json:"status"`
	Outcome  string    `json:"outcome"`
	Error    string    `json:"error,omitempty"`
	Attempts []Attempt `json:"attempts,omitempty"`

	LatencyMS float64 `json:"latency_ms"`
	TTFTMS    float64 `json:"ttft_ms,omitempty"`
	Usage     Usage   `json:"usage"`
	// CostUSD is the answer's cost at the configured price of its provider
	// and model (pricing:), or null when that model has no price.
	CostUSD  *float64 `json:"cost_usd"`
	Contract Verdict  `json:"contract"`
	// cost holds what CostUSD points to when the writer priced the
	// record, so pricing does not allocate on every request.
	cost float64
	// Refusal is true when the chat response was a refusal: a non-null
	// message refusal, finish_reason content_filter, or content opening
	// with one of the route's refusal phrases (issue 16).
	Refusal bool `json:"refusal,omitempty"`
	// PIILeak names the detectors (email, card, phone, iban, api_key,
	// private_key, jwt, custom pattern names) that found, in the response
	// content or tool-call arguments, a value the request did not hold.
	// Never the values.
	PIILeak []string `json:"pii_leak,omitempty"`

	// Request is the masked request messages (JSON array), or absent when
	// the body was not sampled.
	Request json.RawMessage `json:"request,omitempty"`
	// Response is the masked response: {"content":…, "tool_calls":[…],
	// "finish_reason":…} or the masked error body.
	Response json.RawMessage `json:"response,omitempty"`
	// Headers are request headers from the capture allow-list, masked.
	Headers map[string]string `json:"headers,omitempty"`
	// BodySampled says whether Request and Response were kept.
	BodySampled bool `json:"body_sampled"`

	// Raw holds the unmasked inputs the writer masks into Request and
	// Response. It never leaves the process and is cleared by the writer.
	Raw *RawBodies `json:"-"`
}

// RawBodies are owned copies of what the writer masks off the hot path.
type RawBodies struct {
	// RequestBody is the client's request body as received.
	RequestBody []byte
	// ResponseBody is the upstream's non-streaming body or error body.
	ResponseBody []byte
	// StreamContent and StreamToolCalls are the accumulated stream (for
	// streams only). StreamToolCalls is a JSON array of
	// {"id","name","arguments"}.
	StreamContent   string
	StreamToolCalls []byte
	FinishReason    string
	// SystemPrompt is the route's system prompt sent upstream with the
	// request: a value the model repeats from it is no leak.
	SystemPrompt string
	// RequestValid says RequestBody is valid JSON, as the proxy's parser
	// found before forwarding it, so the writer does not check its
	// grammar again (issue 15: each byte parsed once on each path). Leave
	// it false when unsure: the writer then checks.
	RequestValid bool
}

// release lets go of the bodies. The proxy allocates a record and its
// RawBodies together (one box per request), so dropping the record's
// pointer alone would keep the bodies alive for as long as the record:
// in the queue, and then in the memory ring for lookups. Safe on nil.
func (b *RawBodies) release() {
	if b != nil {
		b.RequestBody, b.ResponseBody, b.StreamContent, b.StreamToolCalls = nil, nil, "", nil
	}
}

// Params are the request parameters worth comparing across requests.
type Params struct {
	Stream         bool     `json:"stream"`
	Temperature    *float64 `json:"temperature,omitempty"`
	MaxTokens      int      `json:"max_tokens,omitempty"`
	ResponseFormat string   `json:"response_format,omitempty"`
	Tools          int      `json:"tools,omitempty"`
}

// Attempt is one upstream try.
type Attempt struct {
	Provider          string  `json:"provider"`
	Model             string  `json:"model"`
	Target            string  `json:"target,omitempty"` // as Record.Target
	Cohort            string  `json:"cohort,omitempty"`
	Status            int     `json:"status"`
	ProviderRequestID string  `json:"provider_request_id,omitempty"`
	LatencyMS         float64 `json:"latency_ms"`
	Error             string  `json:"error,omitempty"`
	Contract          string  `json:"contract,omitempty"`
	// DiscardedTokens are the tokens the provider reported for this
	// attempt when its answer was not the one the client got (a 5xx or
	// 429 with usage, a contract failure that fell back): charged to the
	// key all the same.
	DiscardedTokens int `json:"discarded_tokens,omitempty"`
	// EstimatedTokens are charged to the key for a stream that ended
	// without the provider's usage (the client went away, the upstream
	// broke, a deadline cut it): 4 bytes a token over the request body
	// and the content received. The provider bills such streams too.
	EstimatedTokens int `json:"estimated_tokens,omitempty"`
}

// Usage is token usage as the provider reported it.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	// CachedTokens are the prompt tokens the provider served from its
	// prompt cache, priced at pricing's cached_input.
	CachedTokens int `json:"cached_tokens,omitempty"`
}

// Verdict is a contract check's result.
type Verdict struct {
	Verdict string   `json:"verdict"` // pass, fail or none
	Reasons []string `json:"reasons,omitempty"`
}

// Failed reports whether the record counts as a failure for detection:
// upstream errors, timeouts and contract failures. Client disconnects and
// the client's own mistakes do not count.
func (r *Record) Failed() bool {
	switch r.Outcome {
	case OutcomeUpstreamError, OutcomeTimeout, OutcomeContractFail:
		return true
	}
	return false
}
