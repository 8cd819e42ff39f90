package proxy

import "strings"

// Endpoints of FuzzRequestPath's second argument (taken modulo 3).
const (
	epSeedChat uint8 = iota
	epSeedEmbeddings
	epSeedResponses
)

// responsesSeeds are FuzzRequestPath's /v1/responses bodies: every input
// shape (string, message items with string or part content, function call
// outputs), instructions, text.format, function tools, streams,
// previous_response_id, and the hostile shapes of issue 12 in the fields
// the gateway reads.
func responsesSeeds() []string {
	return []string{
		`{"model":"support-bot","input":"hi","instructions":"Be brief."}`,
		`{"model":"gpt-x","input":[{"role":"user","content":[{"type":"input_text","text":"jane@example.com"}]}],"stream":true}`,
		`{"model":"support-bot","input":[{"type":"function_call_output","call_id":"call_1","output":"{\"ok\":true}"}],"previous_response_id":"resp_1"}`,
		`{"model":"support-bot","input":"x","text":{"format":{"type":"json_schema","name":"a","schema":{"type":"object"}}},"stream":true}`,
		`{"model":"support-bot","input":"x","tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"}}`,
		`{"model":"support-bot","input":"x","temperature":1e999}`,
		`{"model":"support-bot","input":"x","instructions":"a","instructions":"b"}`,
		`{"model":"support-bot","input":[{"role":"user","content":"a","content":"b"}]}`,
		`{"model":"support-bot","input":` + strings.Repeat("[", 100_000),
		`{"model":"support-bot","input":"x","previous_response_id":"` + strings.Repeat("r", 1<<16) + `"}`,
	}
}
