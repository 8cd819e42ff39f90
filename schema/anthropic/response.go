package anthropic

import (
	"errors"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/internal/jsonscan"
	"github.com/cairnhq/cairn/internal/jsonstr"
)

// ErrNotMessage is returned for a 2xx body that is not a Messages API
// message.
var ErrNotMessage = errors.New("anthropic: the response is not a message")

// FinishReason maps a Messages API stop_reason to a chat completions
// finish_reason: end_turn, stop_sequence and pause_turn → stop;
// max_tokens and model_context_window_exceeded → length; tool_use →
// tool_calls; refusal → content_filter (a refusal, for the refusal
// signal). Anything else is stop.
func FinishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

// usage is a Messages API usage object. Anthropic counts input_tokens
// without the cached part; OpenAI's prompt_tokens holds it all, with the
// cache reads as prompt_tokens_details.cached_tokens.
type usage struct {
	input, output, cacheRead, cacheWrite int64
}

func (u *usage) read(v gjson.Result) {
	if x := v.Get("input_tokens"); x.Exists() {
		u.input = x.Int()
	}
	if x := v.Get("output_tokens"); x.Exists() {
		u.output = x.Int()
	}
	if x := v.Get("cache_read_input_tokens"); x.Exists() {
		u.cacheRead = x.Int()
	}
	if x := v.Get("cache_creation_input_tokens"); x.Exists() {
		u.cacheWrite = x.Int()
	}
}

func (u *usage) appendJSON(dst []byte) []byte {
	prompt := u.input + u.cacheRead + u.cacheWrite
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, prompt, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, u.output, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, prompt+u.output, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, u.cacheRead, 10)
	return append(dst, "}}"...)
}

// AppendResponse appends the chat.completion for a Messages API response
// body to dst: the text blocks joined as the content, tool_use blocks as
// tool_calls (arguments = the input's JSON text), stop_reason as
// finish_reason, usage with cache tokens. created is the Unix time to put
// in the completion (the Messages API has none). body is only read.
func AppendResponse(dst, body []byte, created int64) ([]byte, error) {
	if !jsonscan.Valid(body) {
		return dst, ErrNotMessage
	}
	m := gjson.ParseBytes(body)
	if m.Get("type").Str != "message" {
		return dst, ErrNotMessage
	}
	var text []byte
	var calls []gjson.Result
	hasText := false
	for _, b := range m.Get("content").Array() {
		switch b.Get("type").Str {
		case "text":
			hasText = true
			text = append(text, b.Get("text").Str...)
		case "tool_use":
			calls = append(calls, b)
		}
	}
	dst = append(dst, `{"id":`...)
	dst = jsonstr.Append(dst, m.Get("id").Str)
	dst = append(dst, `,"object":"chat.completion","created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"model":`...)
	dst = jsonstr.Append(dst, m.Get("model").Str)
	dst = append(dst, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if hasText || len(calls) == 0 {
		dst = jsonstr.Append(dst, string(text))
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"refusal":null`...)
	if len(calls) > 0 {
		dst = append(dst, `,"tool_calls":[`...)
		for i, c := range calls {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"id":`...)
			dst = jsonstr.Append(dst, c.Get("id").Str)
			dst = append(dst, `,"type":"function","function":{"name":`...)
			dst = jsonstr.Append(dst, c.Get("name").Str)
			dst = append(dst, `,"arguments":`...)
			in := c.Get("input").Raw
			if in == "" {
				in = "{}"
			}
			dst = jsonstr.Append(dst, in)
			dst = append(dst, "}}"...)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `},"logprobs":null,"finish_reason":"`...)
	dst = append(dst, FinishReason(m.Get("stop_reason").Str)...)
	dst = append(dst, `"}],"usage":`...)
	var u usage
	u.read(m.Get("usage"))
	dst = u.appendJSON(dst)
	return append(dst, '}'), nil
}

// errorKind maps a Messages API error type (or, without one, the status)
// to the OpenAI error type and code a client of OpenAI switches on.
func errorKind(typ string, status int) (oaType, code string) {
	switch typ {
	case "invalid_request_error":
		return "invalid_request_error", typ
	case "authentication_error":
		return "invalid_request_error", "invalid_api_key"
	case "permission_error":
		return "invalid_request_error", "permission_denied"
	case "not_found_error":
		return "invalid_request_error", "model_not_found"
	case "request_too_large":
		return "invalid_request_error", "request_too_large"
	case "rate_limit_error":
		return "requests", "rate_limit_exceeded"
	case "billing_error":
		return "insufficient_quota", "insufficient_quota"
	case "api_error", "overloaded_error", "timeout_error":
		return "server_error", typ
	}
	switch {
	case status == 429:
		return "requests", "rate_limit_exceeded"
	case status >= 500:
		return "server_error", "upstream_error"
	}
	return "invalid_request_error", "upstream_error"
}

// ErrorStatus is the status a client of OpenAI expects for a Messages API
// error type; status (the one Anthropic sent) is kept when the type is
// unknown. 529 (overloaded) becomes 503.
func ErrorStatus(typ string, status int) int {
	switch typ {
	case "invalid_request_error":
		return 400
	case "authentication_error":
		return 401
	case "billing_error":
		return 402
	case "permission_error":
		return 403
	case "not_found_error":
		return 404
	case "request_too_large":
		return 413
	case "rate_limit_error":
		return 429
	case "api_error":
		return 500
	case "timeout_error":
		return 504
	case "overloaded_error":
		return 503
	}
	if status == 529 {
		return 503
	}
	return status
}

// AppendError appends OpenAI's error JSON for a Messages API error body
// ({"type":"error","error":{"type":…,"message":…}}) that came with status,
// and returns the status to answer with. A body of another shape keeps
// its status and gets a message naming it.
func AppendError(dst, body []byte, status int) ([]byte, int) {
	e := gjson.GetBytes(body, "error")
	typ, msg := e.Get("type").Str, e.Get("message").Str
	if !jsonscan.Valid(body) || !e.IsObject() {
		typ, msg = "", "the Anthropic provider answered "+strconv.Itoa(status)
	}
	oaType, code := errorKind(typ, status)
	dst = append(dst, `{"error":{"message":`...)
	dst = jsonstr.Append(dst, msg)
	dst = append(dst, `,"type":`...)
	dst = jsonstr.Append(dst, oaType)
	dst = append(dst, `,"param":null,"code":`...)
	dst = jsonstr.Append(dst, code)
	return append(dst, "}}"...), ErrorStatus(typ, status)
}
