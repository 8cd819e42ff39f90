package loadtest

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math"
	"net"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// replyKind is what the assistant message carries.
type replyKind uint8

const (
	kindText     replyKind = iota // message.content
	kindTool                      // message.tool_calls[0]
	kindFunction                  // legacy message.function_call
)

// reply is one planned chat completion, owned (it keeps nothing from the
// request context), so stream writers may use it after the handler returns.
type reply struct {
	id, model, callID string
	created           int64
	kind              replyKind
	name              string // function name for kindTool / kindFunction
	text              string // content, or the arguments text
	finish            string
	promptTokens      int
	completionTokens  int
	includeUsage      bool
}

// streamPlan is the pacing of one stream.
type streamPlan struct {
	latency, interval time.Duration
	chunks            int
}

var errStreamCut = errors.New("mock: stream cut by fault")

// serveChat serves POST /v1/chat/completions.
func (m *Mock) serveChat(ctx *fasthttp.RequestCtx, start time.Time, seq int64) {
	body, model, ok := m.openAIRequest(ctx)
	if !ok {
		return
	}
	if !gjson.GetBytes(body, "messages").IsArray() {
		writeMockError(ctx, fasthttp.StatusBadRequest, "Missing required parameter: 'messages'.", "invalid_request_error", "missing_required_parameter")
		return
	}
	f, handled := m.preludeFault(ctx, model, body, start)
	if handled {
		return
	}
	r := m.planReply(body, model, seq, f)
	reqID := m.opts.RequestIDPrefix + "-" + strconv.FormatInt(seq, 10)

	if gjson.GetBytes(body, "stream").Bool() {
		setProcessingMS(ctx, start)
		m.serveStream(ctx, f, reqID, "text/event-stream", func(plan streamPlan, emit func([]byte) error) {
			m.streamEvents(r, plan, emit)
		})
		return
	}
	if !m.sleep(m.opts.Latency) {
		writeMockError(ctx, fasthttp.StatusServiceUnavailable, "mock provider is shutting down", "server_error", "")
		return
	}
	setProcessingMS(ctx, start)
	m.serveJSON(ctx, f, reqID, r.appendCompletion(make([]byte, 0, 512+len(r.text))))
}

// preludeFault picks the fault for model (or for the system prompt in
// body, see SystemFaultPrefix) and applies what happens before a
// reply is built: Delay, then Hang or Status. handled means the response is
// settled and the caller must return.
func (m *Mock) preludeFault(ctx *fasthttp.RequestCtx, model string, body []byte, start time.Time) (f Fault, handled bool) {
	f, ok := m.faultForRequest(model, body)
	if !ok || !f.active() {
		return Fault{}, false
	}
	if !m.sleep(f.Delay) {
		writeMockError(ctx, fasthttp.StatusServiceUnavailable, "mock provider is shutting down", "server_error", "")
		return f, true
	}
	if f.Hang {
		m.hijack(ctx, m.hangOn)
		return f, true
	}
	if f.Status != 0 {
		setProcessingMS(ctx, start)
		writeFaultStatus(ctx, f)
		return f, true
	}
	return f, false
}

// planReply decides the reply to a chat request: a tool call when tools are
// offered (tool_choice not "none"), a legacy function call for `functions`,
// JSON for response_format, text otherwise; then applies f's transforms.
func (m *Mock) planReply(body []byte, model string, seq int64, f Fault) *reply {
	res := gjson.GetManyBytes(body, "tools", "tool_choice", "functions", "function_call",
		"response_format.type", "response_format.json_schema.schema", "stream_options.include_usage")
	tools, choice, functions, fcall, rfType, rfSchema := res[0], res[1], res[2], res[3], res[4], res[5]
	sid := m.opts.RequestIDPrefix + strconv.FormatInt(seq, 10)
	r := &reply{
		id:           "chatcmpl-" + sid,
		callID:       "call_" + sid,
		model:        model,
		created:      time.Now().Unix(),
		includeUsage: res[6].Bool(),
		finish:       "stop",
	}
	jsonWanted := false
	switch {
	case len(tools.Array()) > 0 && choice.String() != "none":
		fn := tools.Array()[0].Get("function")
		if want := choice.Get("function.name"); want.Exists() {
			fn = gjson.Result{}
			for _, t := range tools.Array() {
				if t.Get("function.name").Str == want.Str {
					fn = t.Get("function")
					break
				}
			}
			if !fn.Exists() {
				fn = gjson.Parse(`{"name":` + want.Raw + `}`)
			}
		}
		r.kind, r.finish = kindTool, "tool_calls"
		r.name = fn.Get("name").Str
		r.text = m.instanceText(fn.Get("parameters"))
	case len(functions.Array()) > 0 && fcall.String() != "none":
		fn := functions.Array()[0]
		if want := fcall.Get("name"); want.Exists() {
			for _, c := range functions.Array() {
				if c.Get("name").Str == want.Str {
					fn = c
					break
				}
			}
		}
		r.kind, r.finish = kindFunction, "function_call"
		r.name = fn.Get("name").Str
		r.text = m.instanceText(fn.Get("parameters"))
	case rfType.Str == "json_schema" && rfSchema.Exists():
		jsonWanted = true
		r.text = m.instanceText(rfSchema)
	case rfType.Str == "json_schema" || rfType.Str == "json_object":
		jsonWanted = true
		r.text = m.opts.JSONContent
	default:
		r.text = m.opts.Content
	}

	if f.LegacyFunctionCall && r.kind == kindTool {
		r.kind, r.finish = kindFunction, "function_call"
	}
	if f.WrapToolArgs && r.kind != kindText {
		switch f.variant(seq, 3) {
		case 0:
			r.text = string(appendJSONString(nil, r.text))
		case 1:
			r.text = `{"arguments":` + r.text + `}`
		default:
			r.text = "```json\n" + r.text + "\n```"
		}
	}
	if f.Degrade && r.kind == kindText && !jsonWanted {
		r.text = DegradedContent
	}
	if f.BrokenJSON {
		j := r.text
		if r.kind == kindText && !jsonWanted {
			j = m.opts.JSONContent
		}
		r.text = breakJSON(j, f.variant(seq, 2))
	}
	guardrailFault(r, f, jsonWanted, seq)
	r.promptTokens = approxTokens(len(body))
	r.completionTokens = approxTokens(len(r.text) + len(r.name))
	if f.Tokens > 0 {
		r.completionTokens = f.Tokens
	}
	return r
}

// instanceText returns JSON satisfying the schema ("{}" if none). Results
// are cached per schema text (bounded), since clients repeat their tools.
func (m *Mock) instanceText(schema gjson.Result) string {
	if !schema.Exists() || schema.Type == gjson.Null {
		return "{}"
	}
	if v, ok := m.instances.Load(schema.Raw); ok {
		return v.(string)
	}
	out := string(appendInstance(nil, schema))
	if len(schema.Raw) <= maxCachedSchema && m.instanceN.Load() < maxCachedInstances {
		if _, loaded := m.instances.LoadOrStore(schema.Raw, out); !loaded {
			m.instanceN.Add(1)
		}
	}
	return out
}

// breakJSON returns j made invalid: variant 0 wraps it in prose, 1 cuts it
// in half.
func breakJSON(j string, variant int) string {
	if variant == 0 {
		return "Sure! Here is the JSON you asked for:\n" + j + "\nLet me know if you need anything else."
	}
	n := len(j) / 2
	for n > 0 && !utf8.RuneStart(j[n]) {
		n--
	}
	if n < 2 {
		return `{"answer":`
	}
	return j[:n]
}

func appendUsage(b []byte, prompt, completion int) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt+completion), 10)
	return append(b, `,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`...)
}

// appendCompletion appends the non-streaming chat.completion object.
func (r *reply) appendCompletion(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, r.id)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, r.created, 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, r.model)
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	switch r.kind {
	case kindText:
		b = appendJSONString(b, r.text)
	case kindTool:
		b = append(b, `null,"tool_calls":[{"id":`...)
		b = appendJSONString(b, r.callID)
		b = append(b, `,"type":"function","function":{"name":`...)
		b = appendJSONString(b, r.name)
		b = append(b, `,"arguments":`...)
		b = appendJSONString(b, r.text)
		b = append(b, `}}]`...)
	case kindFunction:
		b = append(b, `null,"function_call":{"name":`...)
		b = appendJSONString(b, r.name)
		b = append(b, `,"arguments":`...)
		b = appendJSONString(b, r.text)
		b = append(b, '}')
	}
	b = append(b, `,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":`...)
	b = appendJSONString(b, r.finish)
	b = append(b, `}],"usage":`...)
	b = appendUsage(b, r.promptTokens, r.completionTokens)
	return append(b, `,"service_tier":"default","system_fingerprint":"fp_cairn_mock"}`...)
}

// appendChunkHead appends `data: {...,"choices":[` of a chunk event.
func (r *reply) appendChunkHead(b []byte) []byte {
	b = append(b, `data: {"id":`...)
	b = appendJSONString(b, r.id)
	b = append(b, `,"object":"chat.completion.chunk","created":`...)
	b = strconv.AppendInt(b, r.created, 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, r.model)
	return append(b, `,"service_tier":"default","system_fingerprint":"fp_cairn_mock","choices":[`...)
}

// appendChoiceChunk appends a whole chunk event with one choice whose delta
// is the raw JSON delta; finish "" is sent as null.
func (r *reply) appendChoiceChunk(b []byte, delta []byte, finish string) []byte {
	b = r.appendChunkHead(b)
	b = append(b, `{"index":0,"delta":`...)
	b = append(b, delta...)
	b = append(b, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, finish)
	}
	b = append(b, "}]"...)
	if r.includeUsage {
		b = append(b, `,"usage":null`...)
	}
	return append(b, "}\n\n"...)
}

// firstDelta is the delta of the first chunk: the role, and for calls the
// call's identity with empty arguments.
func (r *reply) firstDelta(b []byte) []byte {
	switch r.kind {
	case kindTool:
		b = append(b, `{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":`...)
		b = appendJSONString(b, r.callID)
		b = append(b, `,"type":"function","function":{"name":`...)
		b = appendJSONString(b, r.name)
		return append(b, `,"arguments":""}}],"refusal":null}`...)
	case kindFunction:
		b = append(b, `{"role":"assistant","content":null,"function_call":{"name":`...)
		b = appendJSONString(b, r.name)
		return append(b, `,"arguments":""},"refusal":null}`...)
	default:
		return append(b, `{"role":"assistant","content":"","refusal":null}`...)
	}
}

// pieceDelta is the delta carrying one piece of the text or arguments.
func (r *reply) pieceDelta(b []byte, piece string) []byte {
	switch r.kind {
	case kindTool:
		b = append(b, `{"tool_calls":[{"index":0,"function":{"arguments":`...)
		b = appendJSONString(b, piece)
		return append(b, `}}]}`...)
	case kindFunction:
		b = append(b, `{"function_call":{"arguments":`...)
		b = appendJSONString(b, piece)
		return append(b, `}}`...)
	default:
		b = append(b, `{"content":`...)
		b = appendJSONString(b, piece)
		return append(b, '}')
	}
}

// streamEvents produces the SSE events of r paced by p, handing each to
// emit; it stops at the first emit error or when the mock closes.
func (m *Mock) streamEvents(r *reply, p streamPlan, emit func([]byte) error) {
	if !m.sleep(p.latency) {
		return
	}
	var ev, delta []byte
	delta = r.firstDelta(delta[:0])
	ev = r.appendChoiceChunk(ev[:0], delta, "")
	if emit(ev) != nil {
		return
	}
	for i, piece := range splitPieces(r.text, p.chunks) {
		if i > 0 && !m.sleep(p.interval) {
			return
		}
		delta = r.pieceDelta(delta[:0], piece)
		ev = r.appendChoiceChunk(ev[:0], delta, "")
		if emit(ev) != nil {
			return
		}
	}
	ev = r.appendChoiceChunk(ev[:0], []byte("{}"), r.finish)
	if emit(ev) != nil {
		return
	}
	if r.includeUsage {
		ev = r.appendChunkHead(ev[:0])
		ev = append(ev, `],"usage":`...)
		ev = appendUsage(ev, r.promptTokens, r.completionTokens)
		ev = append(ev, "}\n\n"...)
		if emit(ev) != nil {
			return
		}
	}
	emit([]byte("data: [DONE]\n\n")) //nolint:errcheck // last event
}

// splitPieces splits s into at most n pieces of about equal size, never
// inside a UTF-8 sequence.
func splitPieces(s string, n int) []string {
	if s == "" {
		return nil
	}
	n = max(1, n)
	size := max(1, (len(s)+n-1)/n)
	out := make([]string, 0, n)
	for len(s) > 0 {
		end := min(size, len(s))
		for end < len(s) && !utf8.RuneStart(s[end]) {
			end++
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

// serveEmbeddings serves POST /v1/embeddings: one deterministic unit vector
// (8 dimensions unless `dimensions` says otherwise) per input item, as floats
// or base64 float32s per encoding_format.
func (m *Mock) serveEmbeddings(ctx *fasthttp.RequestCtx, start time.Time, seq int64) {
	body, model, ok := m.openAIRequest(ctx)
	if !ok {
		return
	}
	input := gjson.GetBytes(body, "input")
	var items []string
	switch {
	case input.Type == gjson.String:
		items = []string{input.Raw}
	case input.IsArray():
		arr := input.Array()
		if len(arr) > 0 && (arr[0].Type == gjson.String || arr[0].IsArray()) {
			for _, it := range arr {
				items = append(items, it.Raw)
			}
		} else if len(arr) > 0 {
			items = []string{input.Raw} // one input given as token IDs
		}
	}
	if len(items) == 0 {
		writeMockError(ctx, fasthttp.StatusBadRequest, "'input' is a required property and must not be empty", "invalid_request_error", "")
		return
	}
	f, handled := m.preludeFault(ctx, model, nil, start)
	if handled {
		return
	}
	if !m.sleep(m.opts.Latency) {
		writeMockError(ctx, fasthttp.StatusServiceUnavailable, "mock provider is shutting down", "server_error", "")
		return
	}
	dims := int(gjson.GetBytes(body, "dimensions").Int())
	if dims <= 0 || dims > 4096 {
		dims = 8
	}
	b64 := gjson.GetBytes(body, "encoding_format").Str == "base64"
	b := []byte(`{"object":"list","data":[`)
	vec := make([]float32, dims)
	raw := make([]byte, 4*dims)
	for i, it := range items {
		embed(vec, it)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		if b64 {
			for j, v := range vec {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(v))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for j, v := range vec {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = appendJSONString(b, model)
	tokens := approxTokens(len(input.Raw))
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, "}}"...)
	if f.disconnects() {
		reqID := m.opts.RequestIDPrefix + "-" + strconv.FormatInt(seq, 10)
		m.hijack(ctx, func(c net.Conn) { rawHead(c, "application/json", reqID, len(b)) })
		return
	}
	ctx.Response.Header.SetContentType("application/json")
	setProcessingMS(ctx, start)
	ctx.SetBody(b)
}

// embed fills vec with a unit vector derived from s.
func embed(vec []float32, s string) {
	h := fnv.New64a()
	h.Write([]byte(s))
	x := h.Sum64()
	var norm float64
	for i := range vec {
		// splitmix64
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		v := float64(z>>11)/float64(1<<53)*2 - 1
		vec[i] = float32(v)
		norm += v * v
	}
	norm = math.Sqrt(norm)
	if norm == 0 {
		return
	}
	for i := range vec {
		vec[i] = float32(float64(vec[i]) / norm)
	}
}
