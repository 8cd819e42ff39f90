package schema

import (
	"strings"

	"github.com/tidwall/gjson"
)

// ForResponses switches a (reset or new) accumulator to the Responses
// API: Add then folds typed stream events (response.created,
// response.output_text.delta, response.output_item.added,
// response.function_call_arguments.delta, response.completed, error, …)
// into the same final message a chat stream yields: output text as
// content, function_call items as tool calls by output_index, the status
// as a finish reason ("stop", "tool_calls", "length" for an incomplete
// response, "error" for a failed one), usage from
// usage.input_tokens/output_tokens and the resp_… ID. Reset clears the
// mode.
func (a *StreamAccumulator) ForResponses() { a.responses = true }

// addResponsesEvent folds one Responses stream event.
func (a *StreamAccumulator) addResponsesEvent(data []byte) {
	top, ok := a.topObject(data)
	if !ok {
		return
	}
	var typ, resp, item, delta, args gjson.Result
	idx := -1
	top.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "type":
			typ = v
		case "response":
			resp = v
		case "item":
			item = v
		case "delta":
			delta = v
		case "arguments":
			args = v
		case "output_index":
			if v.Type == gjson.Number && v.Num >= 0 && v.Num < 1<<20 {
				idx = int(v.Num)
			}
		}
		return true
	})
	if typ.Type != gjson.String {
		a.bad++
		return
	}
	switch typ.Str {
	case "response.output_text.delta":
		if delta.Type == gjson.String {
			a.content = a.appendString(a.content, delta)
		}
	case "response.refusal.delta":
		if delta.Type == gjson.String {
			a.refusal = a.appendString(a.refusal, delta)
		}
	case "response.function_call_arguments.delta", "response.custom_tool_call_input.delta":
		if c := a.call(idx, false); c != nil && delta.Type == gjson.String {
			c.args = a.appendString(c.args, delta)
		}
	case "response.function_call_arguments.done":
		// A server that sends no deltas gives the arguments whole here.
		if c := a.call(idx, false); c != nil && len(c.args) == 0 && args.Type == gjson.String {
			c.args = a.appendString(c.args, args)
		}
	case "response.output_item.added", "response.output_item.done":
		if item.IsObject() {
			a.addOutputItem(idx, item, typ.Str == "response.output_item.done")
		}
	case "error":
		if len(a.errRaw) == 0 {
			a.errRaw = append(a.errRaw, top.Raw...)
		}
		a.finish = "error"
	default:
		if resp.IsObject() {
			a.addResponseObject(resp)
		}
	}
}

// addOutputItem notes a function or custom tool call item (as announced
// or finished); done fills what deltas did not bring.
func (a *StreamAccumulator) addOutputItem(idx int, it gjson.Result, done bool) {
	var typ, callID, name, args, input gjson.Result
	it.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "type":
			typ = v
		case "call_id":
			callID = v
		case "name":
			name = v
		case "arguments":
			args = v
		case "input":
			input = v
		}
		return true
	})
	var kind string
	switch typ.Str {
	case "function_call":
		kind = "function"
	case "custom_tool_call":
		kind, args = "custom", input
	default:
		return
	}
	c := a.call(idx, false)
	if c == nil {
		return
	}
	c.typ = kind
	if callID.Type == gjson.String && len(c.id) == 0 {
		c.id = append(c.id, callID.Str...)
	}
	if name.Type == gjson.String && len(c.name) == 0 {
		c.name = a.appendString(c.name, name)
	}
	if args.Type == gjson.String && len(c.args) == 0 && (done || len(args.Str) > 0) {
		c.args = a.appendString(c.args, args)
	}
}

// addResponseObject reads the response object of a stream event: its id
// and model (first seen), usage, and a terminal status.
func (a *StreamAccumulator) addResponseObject(r gjson.Result) {
	var status, errV gjson.Result
	r.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id", "model", "usage":
			a.noteHead(k.Str, v, MaxResponseIDBytes)
		case "status":
			status = v
		case "error":
			errV = v
		}
		return true
	})
	a.noteStatus(status.Str, errV)
}

// noteStatus sets the finish reason (and the error) of a terminal status.
func (a *StreamAccumulator) noteStatus(status string, errV gjson.Result) {
	switch status {
	case "completed":
		a.finish = "stop"
		if len(a.calls) > 0 {
			a.finish = "tool_calls"
		}
	case "incomplete":
		a.finish = "length"
	case "failed", "cancelled":
		a.finish = "error"
		if len(a.errRaw) == 0 {
			if errV.IsObject() {
				a.errRaw = append(a.errRaw, errV.Raw...)
			} else {
				a.errRaw = append(a.errRaw, `{"message":"response `+status+`"}`...)
			}
		}
	}
}

// addWholeItem reads one output item of a non-streamed response. It
// scans without decoding (eachMember, eachElement): a gjson value would
// unescape every text it visits, and JSON output is full of escapes.
func (a *StreamAccumulator) addWholeItem(idx int, raw string) {
	var typ, content string
	eachMember(raw, func(k, v string) bool {
		switch k {
		case "type":
			typ = v
		case "content":
			content = v
		}
		return true
	})
	switch typ {
	case `"message"`:
		eachElement(content, func(part string) bool {
			var ptyp, text, refusal string
			eachMember(part, func(k, v string) bool {
				switch k {
				case "type":
					ptyp = v
				case "text":
					text = v
				case "refusal":
					refusal = v
				}
				return true
			})
			switch {
			case ptyp == `"output_text"` && len(text) > 0 && text[0] == '"':
				a.content = a.appendString(a.content, gjson.Result{Type: gjson.String, Raw: text})
			case ptyp == `"refusal"` && len(refusal) > 0 && refusal[0] == '"':
				a.refusal = a.appendString(a.refusal, gjson.Result{Type: gjson.String, Raw: refusal})
			}
			return true
		})
	case `"function_call"`, `"custom_tool_call"`:
		a.addOutputItem(idx, gjson.Parse(raw), true)
	}
}

// AddResponseBody folds a whole (non-streamed) Responses API body into a,
// which must be in ForResponses mode: the same message, finish reason and
// usage a stream of it would accumulate. It does not set ID and Model
// (ReadReply reads the body's id without a copy). body is not retained.
func (a *StreamAccumulator) AddResponseBody(body []byte) {
	a.chunks++
	top, _ := parseTop(body)
	if !top.IsObject() {
		a.bad++
		return
	}
	var status, errRaw, output, usage string
	eachMember(top.Raw, func(k, v string) bool {
		switch k {
		case "status":
			status = v
		case "error":
			errRaw = v
		case "output":
			output = v
		case "usage":
			usage = v
		}
		return true
	})
	i := 0
	eachElement(output, func(it string) bool {
		if len(it) > 0 && it[0] == '{' {
			a.addWholeItem(i, it)
		}
		i++
		return true
	})
	if len(usage) > 0 && usage[0] == '{' {
		if u, ok := usageOf(gjson.Parse(usage)); ok {
			a.usage, a.hasUsage = u, true
		}
	}
	a.noteStatus(strings.Trim(status, `"`), gjson.Parse(errRaw))
}

// ResponsesEventType returns the "type" of a Responses stream event when
// it is the event's first member (as every OpenAI event writes it), else
// nil. It aliases data and does not allocate: the relay uses it to write
// the event's "event:" line.
func ResponsesEventType(data []byte) []byte {
	const prefix = `{"type":"`
	if len(data) < len(prefix) || string(data[:len(prefix)]) != prefix {
		return nil
	}
	rest := data[len(prefix):]
	for i, c := range rest {
		switch {
		case c == '"':
			return rest[:i]
		case c == '\\' || c < 0x20 || c == '\n' || c == '\r':
			return nil
		}
	}
	return nil
}

// AppendResponsesSSEError appends the terminal error event of a Responses
// stream: "event: error" and a typed error event
// {"type":"error","code":…,"message":…,"param":null}, which also carries
// the error object the chat streams send ("error": {...}), so that SDKs
// that stop on an "error" member raise it either way.
func AppendResponsesSSEError(dst []byte, message, typ, code string) []byte {
	dst = append(dst, "event: error\ndata: {\"type\":\"error\",\"code\":"...)
	dst = appendNullableString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, message)
	dst = append(dst, `,"param":null,"error":{"message":`...)
	dst = appendJSONString(dst, message)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, typ)
	dst = append(dst, `,"param":null,"code":`...)
	dst = appendNullableString(dst, code)
	return append(dst, "}}\n\n"...)
}
