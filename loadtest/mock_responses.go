package loadtest

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// mockResponsesMax bounds the responses a Mock keeps for
// previous_response_id and GET /v1/responses/{id}; beyond it the oldest go.
const mockResponsesMax = 10_000

// mockResponses is the Mock's store of created responses: state lives at
// the provider, so a continuation or retrieval of a response this mock did
// not create gets OpenAI's 404, which is what lets a test see a gateway
// route a conversation to the wrong provider.
type mockResponses struct {
	mu    sync.Mutex
	m     map[string]*mockResponse
	order []string
}

type mockResponse struct {
	body  []byte // the completed response object
	input []byte // the request's raw "input" (items are built on GET)
	sid   string
}

func (s *mockResponses) put(id string, r *mockResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*mockResponse)
	}
	if len(s.order) >= mockResponsesMax {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
	s.m[id] = r
	s.order = append(s.order, id)
}

func (s *mockResponses) get(id string) *mockResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

func (s *mockResponses) del(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[id]
	delete(s.m, id)
	return ok
}

// serveResponses serves the Responses API: POST /v1/responses (plain and
// streamed; text, function_call and JSON output; previous_response_id),
// GET|DELETE /v1/responses/{id}, POST /v1/responses/{id}/cancel and GET
// /v1/responses/{id}/input_items. Faults apply as for chat completions
// (a system fault matches the request's instructions). path has no /v1.
func (m *Mock) serveResponses(ctx *fasthttp.RequestCtx, start time.Time, seq int64, path string) {
	method := string(ctx.Method())
	if path == "/responses" {
		if method != fasthttp.MethodPost {
			m.capture(ctx, "")
			writeMockError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed", "invalid_request_error", "")
			return
		}
		m.createResponse(ctx, start, seq)
		return
	}
	m.capture(ctx, "")
	if !m.authorized(ctx) {
		return
	}
	id, sub, _ := strings.Cut(strings.TrimPrefix(path, "/responses/"), "/")
	r := m.resps.get(id)
	if r == nil {
		writeMockError(ctx, fasthttp.StatusNotFound, "Response with id '"+id+"' not found.", "invalid_request_error", "")
		return
	}
	ctx.Response.Header.SetContentType("application/json")
	setProcessingMS(ctx, start)
	switch {
	case sub == "" && method == fasthttp.MethodGet:
		ctx.SetBody(r.body)
	case sub == "" && method == fasthttp.MethodDelete:
		m.resps.del(id)
		ctx.SetBody([]byte(`{"id":"` + id + `","object":"response","deleted":true}`))
	case sub == "cancel" && method == fasthttp.MethodPost:
		// Only background responses can be cancelled at OpenAI; the mock
		// answers with the response marked cancelled so tests see it.
		out := strings.Replace(string(r.body), `"status":"completed"`, `"status":"cancelled"`, 1)
		ctx.SetBody([]byte(out))
	case sub == "input_items" && method == fasthttp.MethodGet:
		input := inputItems(gjson.ParseBytes(r.input), r.sid)
		b := append([]byte(`{"object":"list","data":`), input...)
		items := gjson.ParseBytes(input).Array()
		first, last := "", ""
		if len(items) > 0 {
			first, last = items[0].Get("id").Str, items[len(items)-1].Get("id").Str
		}
		b = append(b, `,"first_id":`...)
		b = appendJSONString(b, first)
		b = append(b, `,"last_id":`...)
		b = appendJSONString(b, last)
		ctx.SetBody(append(b, `,"has_more":false}`...))
	default:
		writeMockError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed", "invalid_request_error", "")
	}
}

// respReply is one planned response: the chat reply plan, plus what a
// Responses object carries beyond it.
type respReply struct {
	*reply
	id, msgID, fcID, prev, instructions string
	createdAt                           int64
	seq                                 int
}

func (m *Mock) createResponse(ctx *fasthttp.RequestCtx, start time.Time, seq int64) {
	body, model, ok := m.openAIRequest(ctx)
	if !ok {
		return
	}
	res := gjson.GetManyBytes(body, "input", "previous_response_id", "instructions", "tools", "tool_choice", "text.format", "stream")
	input, prev, instr, tools, choice, format, stream := res[0], res[1], res[2], res[3], res[4], res[5], res[6]
	if prev.Type == gjson.String && m.resps.get(prev.Str) == nil {
		ctx.Response.Header.SetContentType("application/json")
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		b := append([]byte(`{"error":{"message":`), appendJSONString(nil, "Previous response with id '"+prev.Str+"' not found.")...)
		ctx.SetBody(append(b, `,"type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}`...))
		return
	}
	// The reply is planned as for chat, from a chat-shaped view of the
	// request: flat function tools nest under "function", text.format is
	// response_format, instructions the system message.
	chat := plainChat
	if instr.Exists() || tools.Exists() || format.Exists() {
		chat = chatView(model, instr, tools, choice, format)
	}
	f, handled := m.preludeFault(ctx, model, chat, start)
	if handled {
		return
	}
	rp := m.planReply(chat, model, seq, f)
	sid := rp.id[len("chatcmpl-"):] // the prefix and sequence planReply drew
	ids := "resp_" + sid + "msg_" + sid + "fc_" + sid
	n := len(sid)
	r := &respReply{reply: rp, id: ids[:5+n], msgID: ids[5+n : 9+2*n], fcID: ids[9+2*n:],
		instructions: instr.Str, createdAt: time.Now().Unix()}
	r.promptTokens = approxTokens(len(body))
	if prev.Type == gjson.String {
		r.prev = prev.Str
	}
	final := r.appendResponse(nil, "completed")
	m.resps.put(r.id, &mockResponse{body: final, input: []byte(input.Raw), sid: sid})
	reqID := m.opts.RequestIDPrefix + "-" + strconv.FormatInt(seq, 10)

	if stream.Bool() {
		setProcessingMS(ctx, start)
		m.serveStream(ctx, f, reqID, "text/event-stream", func(plan streamPlan, emit func([]byte) error) {
			m.responseEvents(r, plan, emit)
		})
		return
	}
	if !m.sleep(m.opts.Latency) {
		writeMockError(ctx, fasthttp.StatusServiceUnavailable, "mock provider is shutting down", "server_error", "")
		return
	}
	setProcessingMS(ctx, start)
	m.serveJSON(ctx, f, reqID, final)
}

// plainChat is the chat view of a request with no instructions, tools or
// format: planReply answers it with text.
var plainChat = []byte(`{"messages":[]}`)

// chatView builds the chat-completions-shaped body planReply reads.
func chatView(model string, instr, tools, choice, format gjson.Result) []byte {
	b := make([]byte, 0, 96+len(model)+len(instr.Raw)+len(tools.Raw)+len(choice.Raw)+len(format.Raw))
	b = append(b, `{"model":`...)
	b = appendJSONString(b, model)
	b = append(b, `,"messages":[`...)
	if instr.Type == gjson.String {
		b = append(b, `{"role":"system","content":`...)
		b = appendJSONString(b, instr.Str)
		b = append(b, '}')
	}
	b = append(b, ']')
	if tools.IsArray() {
		b = append(b, `,"tools":[`...)
		n := 0
		tools.ForEach(func(_, t gjson.Result) bool {
			if t.Get("type").Str != "function" {
				return true
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b = append(b, `{"type":"function","function":{"name":`...)
			b = appendJSONString(b, t.Get("name").Str)
			if p := t.Get("parameters"); p.IsObject() {
				b = append(append(b, `,"parameters":`...), p.Raw...)
			}
			b = append(b, "}}"...)
			return true
		})
		b = append(b, ']')
	}
	switch {
	case choice.Type == gjson.String:
		b = append(append(b, `,"tool_choice":`...), choice.Raw...)
	case choice.Get("name").Type == gjson.String:
		b = append(b, `,"tool_choice":{"type":"function","function":{"name":`...)
		b = appendJSONString(b, choice.Get("name").Str)
		b = append(b, "}}"...)
	}
	switch format.Get("type").Str {
	case "json_object":
		b = append(b, `,"response_format":{"type":"json_object"}`...)
	case "json_schema":
		b = append(b, `,"response_format":{"type":"json_schema","json_schema":{"name":"out"`...)
		if s := format.Get("schema"); s.IsObject() {
			b = append(append(b, `,"schema":`...), s.Raw...)
		}
		b = append(b, "}}"...)
	}
	return append(b, '}')
}

// inputItems returns the request's input as Responses input items (a
// string input is one user message).
func inputItems(input gjson.Result, sid string) []byte {
	switch {
	case input.Type == gjson.String:
		b := append([]byte(`[{"id":"msg_in_`+sid+`","type":"message","role":"user","status":"completed","content":[{"type":"input_text","text":`), appendJSONString(nil, input.Str)...)
		return append(b, "}]}]"...)
	case input.IsArray():
		b := []byte{'['}
		i := 0
		input.ForEach(func(_, it gjson.Result) bool {
			if i > 0 {
				b = append(b, ',')
			}
			if !it.Get("id").Exists() && it.IsObject() {
				b = append(b, `{"id":"item_`+sid+`_`+strconv.Itoa(i)+`",`...)
				b = append(b, strings.TrimSpace(it.Raw)[1:]...)
			} else {
				b = append(b, it.Raw...)
			}
			i++
			return true
		})
		return append(b, ']')
	}
	return []byte("[]")
}

// appendItem appends the reply's output item: a function_call or an
// assistant message; args and text are the (partial) values.
func (r *respReply) appendItem(b []byte, status, text string) []byte {
	if r.kind != kindText {
		b = append(b, `{"type":"function_call","id":"`...)
		b = append(b, r.fcID...)
		b = append(b, `","call_id":"`...)
		b = append(b, r.callID...)
		b = append(b, `","name":`...)
		b = appendJSONString(b, r.name)
		b = append(b, `,"arguments":`...)
		b = appendJSONString(b, text)
		b = append(b, `,"status":"`...)
		b = append(b, status...)
		return append(b, `"}`...)
	}
	b = append(b, `{"type":"message","id":"`...)
	b = append(b, r.msgID...)
	b = append(b, `","status":"`...)
	b = append(b, status...)
	b = append(b, `","role":"assistant","content":[`...)
	if status == "completed" || text != "" {
		b = append(b, `{"type":"output_text","text":`...)
		b = appendJSONString(b, text)
		b = append(b, `,"annotations":[]}`...)
	}
	return append(b, "]}"...)
}

// appendResponse appends the response object with the given status; a
// completed one carries its output and usage.
func (r *respReply) appendResponse(b []byte, status string) []byte {
	if b == nil {
		b = make([]byte, 0, 640+len(r.text)+len(r.instructions))
	}
	b = append(b, `{"id":"`...)
	b = append(b, r.id...)
	b = append(b, `","object":"response","created_at":`...)
	b = strconv.AppendInt(b, r.createdAt, 10)
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","error":null,"incomplete_details":null,"instructions":`...)
	if r.instructions != "" {
		b = appendJSONString(b, r.instructions)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"model":`...)
	b = appendJSONString(b, r.model)
	b = append(b, `,"output":[`...)
	if status == "completed" {
		b = r.appendItem(b, "completed", r.text)
	}
	b = append(b, `],"parallel_tool_calls":true,"previous_response_id":`...)
	if r.prev != "" {
		b = appendJSONString(b, r.prev)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","metadata":{},"usage":`...)
	if status == "completed" {
		b = append(b, `{"input_tokens":`...)
		b = strconv.AppendInt(b, int64(r.promptTokens), 10)
		b = append(b, `,"input_tokens_details":{"cached_tokens":0},"output_tokens":`...)
		b = strconv.AppendInt(b, int64(r.completionTokens), 10)
		b = append(b, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
		b = strconv.AppendInt(b, int64(r.promptTokens+r.completionTokens), 10)
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	return append(b, '}')
}

// event appends one typed SSE event: "event: <type>", then its data with
// "type" first and the sequence number.
func (r *respReply) event(b []byte, typ, rest string) []byte {
	b = append(b, "event: "+typ+"\ndata: {\"type\":\""+typ+"\",\"sequence_number\":"...)
	b = strconv.AppendInt(b, int64(r.seq), 10)
	r.seq++
	b = append(b, rest...)
	return append(b, "}\n\n"...)
}

// responseEvents produces the stream of r paced by p: response.created,
// response.in_progress, the output item (text deltas or function call
// argument deltas), response.completed.
func (m *Mock) responseEvents(r *respReply, p streamPlan, emit func([]byte) error) {
	if !m.sleep(p.latency) {
		return
	}
	r.seq = 0
	var ev []byte
	send := func(typ, rest string) bool {
		ev = r.event(ev[:0], typ, rest)
		return emit(ev) == nil
	}
	if !send("response.created", `,"response":`+string(r.appendResponse(nil, "in_progress"))) ||
		!send("response.in_progress", `,"response":`+string(r.appendResponse(nil, "in_progress"))) ||
		!send("response.output_item.added", `,"output_index":0,"item":`+string(r.appendItem(nil, "in_progress", ""))) {
		return
	}
	tool := r.kind != kindText
	itemID := r.msgID
	if tool {
		itemID = r.fcID
	} else if !send("response.content_part.added", `,"item_id":"`+itemID+`","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}`) {
		return
	}
	for i, piece := range splitPieces(r.text, p.chunks) {
		if i > 0 && !m.sleep(p.interval) {
			return
		}
		d := string(appendJSONString(nil, piece))
		ok := false
		if tool {
			ok = send("response.function_call_arguments.delta", `,"item_id":"`+itemID+`","output_index":0,"delta":`+d)
		} else {
			ok = send("response.output_text.delta", `,"item_id":"`+itemID+`","output_index":0,"content_index":0,"delta":`+d+`,"logprobs":[]`)
		}
		if !ok {
			return
		}
	}
	whole := string(appendJSONString(nil, r.text))
	if tool {
		if !send("response.function_call_arguments.done", `,"item_id":"`+itemID+`","output_index":0,"arguments":`+whole) {
			return
		}
	} else if !send("response.output_text.done", `,"item_id":"`+itemID+`","output_index":0,"content_index":0,"text":`+whole+`,"logprobs":[]`) ||
		!send("response.content_part.done", `,"item_id":"`+itemID+`","output_index":0,"content_index":0,"part":{"type":"output_text","text":`+whole+`,"annotations":[]}`) {
		return
	}
	if !send("response.output_item.done", `,"output_index":0,"item":`+string(r.appendItem(nil, "completed", r.text))) {
		return
	}
	send("response.completed", `,"response":`+string(r.appendResponse(nil, "completed")))
}
