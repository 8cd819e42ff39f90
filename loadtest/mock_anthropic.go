package loadtest

import (
	"strconv"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// The mock's Anthropic Messages API (issue 19): POST /v1/messages answers
// as Anthropic does (content blocks, stop_reason, usage, the event stream,
// error shapes, request-id), with the same replies and faults as chat
// completions, so that a drill or test can fail over from an OpenAI target
// to an Anthropic one. A fault's Status is sent in Anthropic's error shape.

// serveMessages serves POST /v1/messages.
func (m *Mock) serveMessages(ctx *fasthttp.RequestCtx, start time.Time, seq int64) {
	body := ctx.PostBody()
	model := gjson.GetBytes(body, "model").Str
	m.capture(ctx, model)
	reqID := ctx.Response.Header.Peek("x-request-id")
	ctx.Response.Header.Set("request-id", string(reqID))
	ctx.Response.Header.Del("x-request-id")
	if m.opts.APIKey != "" && string(ctx.Request.Header.Peek("x-api-key")) != m.opts.APIKey {
		writeAnthropicError(ctx, fasthttp.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	if len(ctx.Request.Header.Peek("anthropic-version")) == 0 {
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	if !gjson.ValidBytes(body) {
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "the request body is not valid JSON")
		return
	}
	res := gjson.GetManyBytes(body, "model", "max_tokens", "messages", "system", "tools", "tool_choice", "stream")
	switch {
	case res[0].Type != gjson.String:
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "model: Field required")
		return
	case res[1].Type != gjson.Number:
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
		return
	case !res[2].IsArray():
		writeAnthropicError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "messages: Field required")
		return
	}
	// The reply is planned from the chat completions request the Messages
	// request stands for, so both APIs answer alike.
	chat := chatEquivalent(model, res[3], res[4], res[5])
	f, ok := m.faultForRequest(model, chat)
	if ok && f.active() {
		if !m.sleep(f.Delay) {
			writeAnthropicError(ctx, 529, "overloaded_error", "mock provider is shutting down")
			return
		}
		if f.Hang {
			m.hijack(ctx, m.hangOn)
			return
		}
		if f.Status != 0 {
			writeAnthropicFault(ctx, f)
			return
		}
	} else {
		f = Fault{}
	}
	r := m.planReply(chat, model, seq, f)
	r.promptTokens = approxTokens(len(body))
	r.id = "msg_" + m.opts.RequestIDPrefix + strconv.FormatInt(seq, 10)
	r.callID = "toolu_" + m.opts.RequestIDPrefix + strconv.FormatInt(seq, 10)
	if res[6].Bool() {
		m.serveStream(ctx, f, string(reqID), "text/event-stream; charset=utf-8", func(plan streamPlan, emit func([]byte) error) {
			m.anthropicEvents(r, plan, emit)
		})
		return
	}
	if !m.sleep(m.opts.Latency) {
		writeAnthropicError(ctx, 529, "overloaded_error", "mock provider is shutting down")
		return
	}
	setProcessingMS(ctx, start)
	m.serveJSON(ctx, f, string(reqID), r.appendMessage(make([]byte, 0, 512+len(r.text))))
}

// chatEquivalent builds the chat completions request planReply reads:
// the system prompt, the tools (input_schema as parameters) and the
// tool_choice (any → required, tool → a named function).
func chatEquivalent(model string, system, tools, choice gjson.Result) []byte {
	b := append([]byte(nil), `{"model":`...)
	b = appendJSONString(b, model)
	b = append(b, `,"messages":[{"role":"system","content":`...)
	sys := system.Str
	if system.IsArray() {
		sys = ""
		for _, p := range system.Array() {
			sys += p.Get("text").Str
		}
	}
	b = appendJSONString(b, sys)
	b = append(b, `}]`...)
	if ts := tools.Array(); len(ts) > 0 {
		b = append(b, `,"tools":[`...)
		for i, t := range ts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":"function","function":{"name":`...)
			b = appendJSONString(b, t.Get("name").Str)
			if s := t.Get("input_schema"); s.IsObject() {
				b = append(b, `,"parameters":`...)
				b = append(b, s.Raw...)
			}
			b = append(b, "}}"...)
		}
		b = append(b, ']')
	}
	switch choice.Get("type").Str {
	case "any":
		b = append(b, `,"tool_choice":"required"`...)
	case "none":
		b = append(b, `,"tool_choice":"none"`...)
	case "tool":
		b = append(b, `,"tool_choice":{"type":"function","function":{"name":`...)
		b = appendJSONString(b, choice.Get("name").Str)
		b = append(b, "}}"...)
	}
	return append(b, '}')
}

// stopReason is the Messages API stop_reason for the reply's finish.
func (r *reply) stopReason() string {
	switch r.finish {
	case "tool_calls", "function_call":
		return "tool_use"
	case "length":
		return "max_tokens"
	case "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// appendToolInput appends the tool call's input: the arguments when they
// are a JSON object (a broken-JSON fault's are sent as a string, which a
// client sees as arguments that are not an object).
func (r *reply) appendToolInput(b []byte) []byte {
	if a := gjson.Parse(r.text); gjson.Valid(r.text) && a.IsObject() {
		return append(b, r.text...)
	}
	return appendJSONString(b, r.text)
}

func (r *reply) appendAnthropicUsage(b []byte, output int) []byte {
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, int64(r.promptTokens), 10)
	b = append(b, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":`...)
	b = strconv.AppendInt(b, int64(output), 10)
	return append(b, '}')
}

// appendMessage appends the non-streaming Messages API response.
func (r *reply) appendMessage(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, r.id)
	b = append(b, `,"type":"message","role":"assistant","model":`...)
	b = appendJSONString(b, r.model)
	b = append(b, `,"content":[`...)
	switch {
	case r.kind != kindText:
		b = append(b, `{"type":"tool_use","id":`...)
		b = appendJSONString(b, r.callID)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, r.name)
		b = append(b, `,"input":`...)
		b = r.appendToolInput(b)
		b = append(b, '}')
	case r.text != "":
		b = append(b, `{"type":"text","text":`...)
		b = appendJSONString(b, r.text)
		b = append(b, '}')
	}
	b = append(b, `],"stop_reason":"`...)
	b = append(b, r.stopReason()...)
	b = append(b, `","stop_sequence":null,"usage":`...)
	b = r.appendAnthropicUsage(b, r.completionTokens)
	return append(b, '}')
}

func appendAnthropicEvent(b []byte, name string, data ...[]byte) []byte {
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	for _, d := range data {
		b = append(b, d...)
	}
	return append(b, "\n\n"...)
}

// anthropicEvents produces the Messages API event stream of r paced by p:
// message_start, ping, one content block (text or tool_use) streamed in
// pieces, message_delta with the stop reason and usage, message_stop.
func (m *Mock) anthropicEvents(r *reply, p streamPlan, emit func([]byte) error) {
	if !m.sleep(p.latency) {
		return
	}
	var ev, d []byte
	d = append(d[:0], `{"type":"message_start","message":{"id":`...)
	d = appendJSONString(d, r.id)
	d = append(d, `,"type":"message","role":"assistant","model":`...)
	d = appendJSONString(d, r.model)
	d = append(d, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	d = r.appendAnthropicUsage(d, 1)
	d = append(d, "}}"...)
	if emit(appendAnthropicEvent(ev[:0], "message_start", d)) != nil {
		return
	}
	if emit(appendAnthropicEvent(ev[:0], "ping", []byte(`{"type": "ping"}`))) != nil {
		return
	}
	d = append(d[:0], `{"type":"content_block_start","index":0,"content_block":`...)
	if r.kind != kindText {
		d = append(d, `{"type":"tool_use","id":`...)
		d = appendJSONString(d, r.callID)
		d = append(d, `,"name":`...)
		d = appendJSONString(d, r.name)
		d = append(d, `,"input":{}}}`...)
	} else {
		d = append(d, `{"type":"text","text":""}}`...)
	}
	if emit(appendAnthropicEvent(ev[:0], "content_block_start", d)) != nil {
		return
	}
	for i, piece := range splitPieces(r.text, p.chunks) {
		if i > 0 && !m.sleep(p.interval) {
			return
		}
		d = append(d[:0], `{"type":"content_block_delta","index":0,"delta":`...)
		if r.kind != kindText {
			d = append(d, `{"type":"input_json_delta","partial_json":`...)
		} else {
			d = append(d, `{"type":"text_delta","text":`...)
		}
		d = appendJSONString(d, piece)
		d = append(d, "}}"...)
		if emit(appendAnthropicEvent(ev[:0], "content_block_delta", d)) != nil {
			return
		}
	}
	if emit(appendAnthropicEvent(ev[:0], "content_block_stop", []byte(`{"type":"content_block_stop","index":0}`))) != nil {
		return
	}
	d = append(d[:0], `{"type":"message_delta","delta":{"stop_reason":"`...)
	d = append(d, r.stopReason()...)
	d = append(d, `","stop_sequence":null},"usage":{"output_tokens":`...)
	d = strconv.AppendInt(d, int64(r.completionTokens), 10)
	d = append(d, "}}"...)
	if emit(appendAnthropicEvent(ev[:0], "message_delta", d)) != nil {
		return
	}
	emit(appendAnthropicEvent(ev[:0], "message_stop", []byte(`{"type":"message_stop"}`))) //nolint:errcheck // last event
}

// anthropicErrorType is the Messages API error type for a status.
func anthropicErrorType(status int) (typ, msg string) {
	switch {
	case status == 400:
		return "invalid_request_error", "Injected mock error."
	case status == 401:
		return "authentication_error", "invalid x-api-key"
	case status == 403:
		return "permission_error", "Your API key does not have permission to use the specified resource."
	case status == 404:
		return "not_found_error", "The requested resource could not be found."
	case status == 413:
		return "request_too_large", "Request exceeds the maximum allowed number of bytes."
	case status == 429:
		return "rate_limit_error", "Number of requests has exceeded your per-minute rate limit."
	case status == 529:
		return "overloaded_error", "Overloaded"
	}
	return "api_error", "Internal server error"
}

// writeAnthropicFault answers with f.Status in Anthropic's error shape
// (f.ErrorType overrides the type), with retry-after on a 429 or 529.
func writeAnthropicFault(ctx *fasthttp.RequestCtx, f Fault) {
	typ, msg := anthropicErrorType(f.Status)
	if f.ErrorType != "" {
		typ = f.ErrorType
	}
	ra := f.RetryAfter
	if ra == 0 && (f.Status == 429 || f.Status == 529) {
		ra = time.Second
	}
	if ra > 0 {
		ctx.Response.Header.Set("retry-after", strconv.FormatInt(int64((ra+time.Second-1)/time.Second), 10))
	}
	writeAnthropicError(ctx, f.Status, typ, msg)
}

// writeAnthropicError writes {"type":"error","error":{"type":…,"message":…}}.
func writeAnthropicError(ctx *fasthttp.RequestCtx, status int, typ, msg string) {
	b := append([]byte(nil), `{"type":"error","error":{"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	b = append(b, "}}"...)
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(b)
}
