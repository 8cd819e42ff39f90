package anthropic

import (
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/internal/jsonscan"
	"github.com/cairnhq/cairn/internal/jsonstr"
)

// responsesStatus maps a stop_reason to a Responses status and, when
// incomplete, the reason: max_tokens (and the context window) →
// max_output_tokens, refusal → content_filter.
func responsesStatus(stop string) (status, reason string) {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "incomplete", "max_output_tokens"
	case "refusal":
		return "incomplete", "content_filter"
	}
	return "completed", ""
}

// appendResponsesUsage appends a Responses usage object: input_tokens
// holds the cached part too (Anthropic counts it apart).
func (u *usage) appendResponsesJSON(dst []byte) []byte {
	in := u.input + u.cacheRead + u.cacheWrite
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, in, 10)
	dst = append(dst, `,"input_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, u.cacheRead, 10)
	dst = append(dst, `},"output_tokens":`...)
	dst = strconv.AppendInt(dst, u.output, 10)
	dst = append(dst, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
	dst = strconv.AppendInt(dst, in+u.output, 10)
	return append(dst, '}')
}

// appendResponseHead appends a Responses object up to its output array's
// opening bracket. id and model are JSON string literals.
func appendResponseHead(dst []byte, id, model string, created int64, status, reason string) []byte {
	dst = append(dst, `{"id":`...)
	dst = append(dst, id...)
	dst = append(dst, `,"object":"response","created_at":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","error":null,"incomplete_details":`...)
	if reason == "" {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"reason":"`...)
		dst = append(dst, reason...)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `,"model":`...)
	dst = append(dst, model...)
	return append(dst, `,"output":[`...)
}

// appendMessageItem appends a message output item holding one output_text
// part; text is a JSON string literal.
func appendMessageItem(dst []byte, id, idx, status string, text []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendItemID(dst, id, idx)
	dst = append(dst, `,"type":"message","status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","role":"assistant","content":[`...)
	if text != nil {
		dst = append(dst, `{"type":"output_text","text":`...)
		dst = append(dst, text...)
		dst = append(dst, `,"annotations":[]}`...)
	}
	return append(dst, "]}"...)
}

// appendItemID appends a message item's ID: the message's ID (a JSON
// string literal) with "_" and the output index.
func appendItemID(dst []byte, id, idx string) []byte {
	if len(id) < 2 {
		id = `""`
	}
	dst = append(dst, id[:len(id)-1]...)
	dst = append(dst, '_')
	dst = append(dst, idx...)
	return append(dst, '"')
}

// appendCallItemJSON appends a function_call output item; callID and name
// are JSON string literals, args the arguments' JSON string literal.
func appendCallItemJSON(dst []byte, callID, name, status string, args []byte) []byte {
	dst = append(dst, `{"id":"fc_`...)
	if len(callID) >= 2 {
		dst = append(dst, callID[1:]...)
	} else {
		dst = append(dst, '"')
	}
	dst = append(dst, `,"type":"function_call","status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","call_id":`...)
	dst = append(dst, callID...)
	dst = append(dst, `,"name":`...)
	dst = append(dst, name...)
	dst = append(dst, `,"arguments":`...)
	dst = append(dst, args...)
	return append(dst, '}')
}

// AppendResponsesResponse appends the Responses object for a Messages API
// response body to dst: each text block a message item with its
// output_text, each tool_use block a function_call item (call_id = the
// tool_use id, arguments = the input's JSON text), stop_reason as status
// (max_tokens → incomplete, max_output_tokens), usage with cache tokens.
// The response ID is the message's (msg_…): nothing is stored, so it
// cannot be fetched or continued. created is the Unix time to put in
// created_at. body is only read.
func AppendResponsesResponse(dst, body []byte, created int64) ([]byte, error) {
	if !jsonscan.Valid(body) {
		return dst, ErrNotMessage
	}
	m := gjson.ParseBytes(body)
	if m.Get("type").Str != "message" {
		return dst, ErrNotMessage
	}
	id := m.Get("id")
	idRaw := `""`
	if id.Type == gjson.String {
		idRaw = id.Raw
	}
	model := m.Get("model")
	modelRaw := `""`
	if model.Type == gjson.String {
		modelRaw = model.Raw
	}
	status, reason := responsesStatus(m.Get("stop_reason").Str)
	dst = appendResponseHead(dst, idRaw, modelRaw, created, status, reason)
	n := 0
	var lit []byte
	for _, b := range m.Get("content").Array() {
		switch b.Get("type").Str {
		case "text":
			if n > 0 {
				dst = append(dst, ',')
			}
			lit = jsonstr.Append(lit[:0], b.Get("text").Str)
			dst = appendMessageItem(dst, idRaw, strconv.Itoa(n), "completed", lit)
			n++
		case "tool_use":
			if n > 0 {
				dst = append(dst, ',')
			}
			in := b.Get("input").Raw
			if in == "" {
				in = "{}"
			}
			lit = jsonstr.Append(lit[:0], in)
			callID, name := `""`, `""`
			if v := b.Get("id"); v.Type == gjson.String {
				callID = v.Raw
			}
			if v := b.Get("name"); v.Type == gjson.String {
				name = v.Raw
			}
			dst = appendCallItemJSON(dst, callID, name, "completed", lit)
			n++
		}
	}
	dst = append(dst, `],"usage":`...)
	var u usage
	u.read(m.Get("usage"))
	dst = u.appendResponsesJSON(dst)
	return append(dst, '}'), nil
}
