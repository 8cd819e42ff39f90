package loadtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// startMock serves a Mock on a loopback port for the test's lifetime.
func startMock(t testing.TB, o MockOptions) (*Mock, string) {
	t.Helper()
	m := NewMock(o)
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("start mock: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, "http://" + addr
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// post sends body to url with a short timeout.
func post(t testing.TB, method, url, body string, hdr ...string) httpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpResult{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpResult{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func chatBody(extra string) string {
	b := `{"model":"gpt-test","messages":[{"role":"user","content":"hello there"}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	if err := readSSE(bytes.NewReader(body), func(d []byte) error {
		out = append(out, string(d))
		return nil
	}); err != nil {
		t.Fatalf("readSSE: %v", err)
	}
	return out
}

func TestMockPlainCompletion(t *testing.T) {
	m, url := startMock(t, MockOptions{RequestIDPrefix: "p1"})
	tests := []struct {
		name, extra, content, finish string
	}{
		{"text", "", DefaultMockContent, "stop"},
		{"json_object", `"response_format":{"type":"json_object"}`, DefaultMockJSONContent, "stop"},
		{"json_schema without schema", `"response_format":{"type":"json_schema","json_schema":{"name":"x"}}`, DefaultMockJSONContent, "stop"},
		{"json_schema", `"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"object","properties":{"refund":{"type":"boolean"},"amount":{"type":"number","minimum":0}},"required":["refund","amount"],"additionalProperties":false}}}`, `{"refund":true,"amount":0}`, "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, "POST", url+"/v1/chat/completions", chatBody(tt.extra))
			if r.err != nil || r.status != 200 {
				t.Fatalf("status %d err %v: %s", r.status, r.err, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type = %q", ct)
			}
			if id := r.header.Get("x-request-id"); !strings.HasPrefix(id, "p1-") {
				t.Errorf("x-request-id = %q; want p1-…", id)
			}
			if r.header.Get("openai-processing-ms") == "" {
				t.Errorf("no openai-processing-ms")
			}
			if !json.Valid(r.body) {
				t.Fatalf("body is not JSON: %s", r.body)
			}
			g := gjson.ParseBytes(r.body)
			for path, want := range map[string]string{
				"object":                    "chat.completion",
				"model":                     "gpt-test",
				"choices.0.message.role":    "assistant",
				"choices.0.message.content": tt.content,
				"choices.0.finish_reason":   tt.finish,
			} {
				if got := g.Get(path).String(); got != want {
					t.Errorf("%s = %q; want %q", path, got, want)
				}
			}
			if !strings.HasPrefix(g.Get("id").Str, "chatcmpl-") || g.Get("created").Int() == 0 {
				t.Errorf("id/created = %q/%d", g.Get("id").Str, g.Get("created").Int())
			}
			u := g.Get("usage")
			if u.Get("prompt_tokens").Int() < 1 || u.Get("completion_tokens").Int() < 1 ||
				u.Get("total_tokens").Int() != u.Get("prompt_tokens").Int()+u.Get("completion_tokens").Int() {
				t.Errorf("usage = %s", u.Raw)
			}
		})
	}
	if m.Requests() != int64(len(tests)) || m.RequestsFor("gpt-test") != int64(len(tests)) || m.RequestsFor("other") != 0 {
		t.Errorf("counters = %d / %d / %d", m.Requests(), m.RequestsFor("gpt-test"), m.RequestsFor("other"))
	}
}

func TestMockRequestErrors(t *testing.T) {
	m, url := startMock(t, MockOptions{APIKey: "sk-up"})
	auth := []string{"Authorization", "Bearer sk-up"}
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"bad json", "POST", "/v1/chat/completions", `{"model":`, auth, 400, ""},
		{"no model", "POST", "/v1/chat/completions", `{"messages":[]}`, auth, 400, ""},
		{"no messages", "POST", "/v1/chat/completions", `{"model":"m"}`, auth, 400, "missing_required_parameter"},
		{"wrong key", "POST", "/v1/chat/completions", chatBody(""), []string{"Authorization", "Bearer nope"}, 401, "invalid_api_key"},
		{"unknown path", "POST", "/v1/nope", `{}`, auth, 404, "unknown_url"},
		{"get chat", "GET", "/v1/chat/completions", "", auth, 405, ""},
		{"embeddings without input", "POST", "/v1/embeddings", `{"model":"e"}`, auth, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, tt.method, url+tt.path, tt.body, tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("status = %d; want %d: %s", r.status, tt.status, r.body)
			}
			g := gjson.ParseBytes(r.body)
			if !g.Get("error.message").Exists() || !g.Get("error.type").Exists() || !g.Get("error.param").Exists() {
				t.Errorf("error body = %s; want OpenAI's shape", r.body)
			}
			if got := g.Get("error.code"); tt.code == "" && got.Type != gjson.Null || tt.code != "" && got.Str != tt.code {
				t.Errorf("error.code = %s; want %q", got.Raw, tt.code)
			}
		})
	}
	if m.Requests() != int64(len(tests)) {
		t.Errorf("Requests() = %d; want %d (errors count too)", m.Requests(), len(tests))
	}
}

func TestMockLastRequest(t *testing.T) {
	m, url := startMock(t, MockOptions{})
	if h, b := m.LastRequest(); h != nil || b != nil {
		t.Fatalf("LastRequest before any = %v %q", h, b)
	}
	body := chatBody(`"user":"u1"`)
	post(t, "POST", url+"/v1/chat/completions", body, "Authorization", "Bearer sk-prov", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h, b := m.LastRequest()
	if string(b) != body {
		t.Errorf("body = %s; want %s", b, body)
	}
	for _, k := range []string{"Authorization", "authorization"} {
		if h[k] != "Bearer sk-prov" {
			t.Errorf("headers[%q] = %q", k, h[k])
		}
	}
	for _, k := range []string{"Traceparent", "traceparent"} {
		if !strings.HasPrefix(h[k], "00-0af7") {
			t.Errorf("headers[%q] = %q", k, h[k])
		}
	}
	b[0] = 'X' // a copy: mutating it changes nothing
	if _, b2 := m.LastRequest(); b2[0] != '{' {
		t.Errorf("LastRequest returned shared memory")
	}
	post(t, "POST", url+"/v1/embeddings", `{"model":"emb","input":"x"}`)
	if _, b := m.LastRequestFor("gpt-test"); string(b) != body {
		t.Errorf("LastRequestFor(gpt-test) = %s", b)
	}
	if m.LastPath() != "/v1/embeddings" {
		t.Errorf("LastPath() = %q", m.LastPath())
	}
}

func TestMockStreamWireShape(t *testing.T) {
	_, url := startMock(t, MockOptions{Chunks: 4, RequestIDPrefix: "s"})
	tests := []struct {
		name, extra  string
		includeUsage bool
	}{
		{"no usage", `"stream":true`, false},
		{"include_usage", `"stream":true,"stream_options":{"include_usage":true}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, "POST", url+"/v1/chat/completions", chatBody(tt.extra))
			if r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("status %d content-type %q", r.status, r.header.Get("Content-Type"))
			}
			if !strings.HasPrefix(r.header.Get("x-request-id"), "s-") {
				t.Errorf("x-request-id = %q", r.header.Get("x-request-id"))
			}
			if !bytes.HasSuffix(r.body, []byte("data: [DONE]\n\n")) {
				t.Errorf("stream does not end with [DONE]: %q", r.body)
			}
			ev := sseEvents(t, r.body)
			// role + 4 pieces + finish (+ usage) + [DONE]
			want := 7
			if tt.includeUsage {
				want = 8
			}
			if len(ev) != want {
				t.Fatalf("%d events; want %d: %q", len(ev), want, ev)
			}
			var content strings.Builder
			for i, e := range ev[:len(ev)-1] {
				g := gjson.Parse(e)
				if g.Get("object").Str != "chat.completion.chunk" || g.Get("model").Str != "gpt-test" || !strings.HasPrefix(g.Get("id").Str, "chatcmpl-") {
					t.Errorf("event %d = %s", i, e)
				}
				if u := g.Get("usage"); tt.includeUsage && i < len(ev)-2 && (!u.Exists() || u.Type != gjson.Null) {
					t.Errorf("event %d usage = %s; want null", i, u.Raw)
				}
				content.WriteString(g.Get("choices.0.delta.content").Str)
			}
			if role := gjson.Get(ev[0], "choices.0.delta.role").Str; role != "assistant" {
				t.Errorf("first delta role = %q", role)
			}
			if content.String() != DefaultMockContent {
				t.Errorf("content = %q; want %q", content.String(), DefaultMockContent)
			}
			fin := ev[5]
			if got := gjson.Get(fin, "choices.0.finish_reason").Str; got != "stop" {
				t.Errorf("finish chunk = %s", fin)
			}
			if tt.includeUsage {
				u := gjson.Parse(ev[6])
				if !u.Get("choices").IsArray() || len(u.Get("choices").Array()) != 0 || u.Get("usage.total_tokens").Int() == 0 {
					t.Errorf("usage chunk = %s", ev[6])
				}
			}
		})
	}
}

const weatherTools = `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]},"days":{"type":"integer","minimum":1,"maximum":7},"opts":{"type":"object","properties":{"hourly":{"type":"boolean"}},"required":["hourly"]}},"required":["city","unit","days","opts"]}}},{"type":"function","function":{"name":"refund","parameters":{"type":"object","properties":{"order_id":{"type":"string","pattern":"^[0-9]+$"}},"required":["order_id"]}}}]`

func TestMockToolCalls(t *testing.T) {
	_, url := startMock(t, MockOptions{Chunks: 5})
	tests := []struct {
		name, extra, fn, args string
	}{
		{"first tool", weatherTools, "get_weather", `{"city":"ok","unit":"c","days":4,"opts":{"hourly":true}}`},
		{"auto", weatherTools + `,"tool_choice":"auto"`, "get_weather", `{"city":"ok","unit":"c","days":4,"opts":{"hourly":true}}`},
		{"named", weatherTools + `,"tool_choice":{"type":"function","function":{"name":"refund"}}`, "refund", `{"order_id":"0"}`},
		{"no parameters", `"tools":[{"type":"function","function":{"name":"ping"}}]`, "ping", `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, "POST", url+"/v1/chat/completions", chatBody(tt.extra))
			g := gjson.ParseBytes(r.body)
			tc := g.Get("choices.0.message.tool_calls.0")
			if g.Get("choices.0.finish_reason").Str != "tool_calls" || tc.Get("type").Str != "function" || !strings.HasPrefix(tc.Get("id").Str, "call_") {
				t.Fatalf("reply = %s", r.body)
			}
			if g.Get("choices.0.message.content").Type != gjson.Null {
				t.Errorf("content = %s; want null", g.Get("choices.0.message.content").Raw)
			}
			if got := tc.Get("function.name").Str; got != tt.fn {
				t.Errorf("name = %q; want %q", got, tt.fn)
			}
			if got := tc.Get("function.arguments").Str; got != tt.args {
				t.Errorf("arguments = %s; want %s", got, tt.args)
			}

			// The same request streamed: fragments concatenate to the same call.
			r = post(t, "POST", url+"/v1/chat/completions", chatBody(tt.extra+`,"stream":true`))
			ev := sseEvents(t, r.body)
			first := gjson.Get(ev[0], "choices.0.delta.tool_calls.0")
			if first.Get("index").Int() != 0 || !first.Get("index").Exists() || !strings.HasPrefix(first.Get("id").Str, "call_") ||
				first.Get("type").Str != "function" || first.Get("function.name").Str != tt.fn ||
				!first.Get("function.arguments").Exists() || first.Get("function.arguments").Str != "" {
				t.Errorf("first fragment = %s", first.Raw)
			}
			var args strings.Builder
			for _, e := range ev[1 : len(ev)-2] {
				frag := gjson.Get(e, "choices.0.delta.tool_calls.0")
				if !frag.Get("index").Exists() || frag.Get("id").Exists() || frag.Get("function.name").Exists() {
					t.Errorf("later fragment = %s; want only index and arguments", frag.Raw)
				}
				args.WriteString(frag.Get("function.arguments").Str)
			}
			if args.String() != tt.args {
				t.Errorf("streamed arguments = %s; want %s", args.String(), tt.args)
			}
			if fr := gjson.Get(ev[len(ev)-2], "choices.0.finish_reason").Str; fr != "tool_calls" {
				t.Errorf("finish_reason = %q", fr)
			}
		})
	}

	t.Run("tool_choice none", func(t *testing.T) {
		r := post(t, "POST", url+"/v1/chat/completions", chatBody(weatherTools+`,"tool_choice":"none"`))
		if got := gjson.GetBytes(r.body, "choices.0.message.content").Str; got != DefaultMockContent {
			t.Errorf("content = %q; want the text reply", got)
		}
	})
	t.Run("legacy functions", func(t *testing.T) {
		r := post(t, "POST", url+"/v1/chat/completions", chatBody(`"functions":[{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}]`))
		g := gjson.ParseBytes(r.body)
		if g.Get("choices.0.message.function_call.name").Str != "lookup" || g.Get("choices.0.message.function_call.arguments").Str != `{"q":"ok"}` || g.Get("choices.0.finish_reason").Str != "function_call" {
			t.Errorf("reply = %s", r.body)
		}
	})
}

func TestMockEmbeddingsAndModels(t *testing.T) {
	_, url := startMock(t, MockOptions{})
	r := post(t, "POST", url+"/v1/embeddings", `{"model":"emb-1","input":["a","b"]}`)
	g := gjson.ParseBytes(r.body)
	if r.status != 200 || g.Get("object").Str != "list" || g.Get("model").Str != "emb-1" || len(g.Get("data").Array()) != 2 {
		t.Fatalf("embeddings = %d %s", r.status, r.body)
	}
	if d := g.Get("data.1"); d.Get("object").Str != "embedding" || d.Get("index").Int() != 1 || len(d.Get("embedding").Array()) != 8 {
		t.Errorf("data[1] = %s", d.Raw)
	}
	if g.Get("usage.prompt_tokens").Int() < 1 {
		t.Errorf("usage = %s", g.Get("usage").Raw)
	}
	r = post(t, "POST", url+"/v1/embeddings", `{"model":"emb-1","input":"a","encoding_format":"base64","dimensions":16}`)
	raw, err := base64.StdEncoding.DecodeString(gjson.GetBytes(r.body, "data.0.embedding").Str)
	if err != nil || len(raw) != 64 {
		t.Errorf("base64 embedding: %d bytes, %v", len(raw), err)
	}
	r = post(t, "GET", url+"/v1/models", "")
	ids := gjson.GetBytes(r.body, "data.#.id").String()
	if gjson.GetBytes(r.body, "object").Str != "list" || !strings.Contains(ids, `"emb-1"`) || !strings.Contains(ids, `"mock-model"`) {
		t.Errorf("models = %s", r.body)
	}
}

func TestMockFaults(t *testing.T) {
	m, url := startMock(t, MockOptions{Chunks: 4})
	tests := []struct {
		name  string
		fault Fault
		extra string
		check func(t *testing.T, r httpResult)
	}{
		{"status 503", Fault{Status: 503}, "", func(t *testing.T, r httpResult) {
			if r.status != 503 || gjson.GetBytes(r.body, "error.type").Str != "server_error" {
				t.Errorf("got %d %s", r.status, r.body)
			}
		}},
		{"status 429", Fault{Status: 429}, "", func(t *testing.T, r httpResult) {
			if r.status != 429 || gjson.GetBytes(r.body, "error.code").Str != "rate_limit_exceeded" || r.header.Get("retry-after") != "1" || r.header.Get("retry-after-ms") != "1000" {
				t.Errorf("got %d %v %s", r.status, r.header, r.body)
			}
		}},
		{"insufficient quota", Fault{Status: 429, ErrorType: "insufficient_quota", ErrorCode: "insufficient_quota"}, "", func(t *testing.T, r httpResult) {
			if gjson.GetBytes(r.body, "error.type").Str != "insufficient_quota" {
				t.Errorf("got %s", r.body)
			}
		}},
		{"delay", Fault{Delay: 150 * time.Millisecond}, "", func(t *testing.T, r httpResult) {
			if r.status != 200 {
				t.Errorf("status %d", r.status)
			}
		}},
		{"broken json prose", Fault{BrokenJSON: true}, `"response_format":{"type":"json_object"}`, func(t *testing.T, r httpResult) {
			c := gjson.GetBytes(r.body, "choices.0.message.content").Str
			if json.Valid([]byte(c)) || !strings.Contains(c, DefaultMockJSONContent) {
				t.Errorf("content = %q; want prose around the JSON", c)
			}
		}},
		{"broken json truncated", Fault{BrokenJSON: true, Variant: 1}, `"response_format":{"type":"json_object"}`, func(t *testing.T, r httpResult) {
			c := gjson.GetBytes(r.body, "choices.0.message.content").Str
			if json.Valid([]byte(c)) || !strings.HasPrefix(DefaultMockJSONContent, c) {
				t.Errorf("content = %q; want a truncated JSON", c)
			}
		}},
		{"broken json plain", Fault{BrokenJSON: true}, "", func(t *testing.T, r httpResult) {
			if c := gjson.GetBytes(r.body, "choices.0.message.content").Str; json.Valid([]byte(c)) || !strings.Contains(c, "{") {
				t.Errorf("content = %q; want broken JSON", c)
			}
		}},
		{"broken tool args", Fault{BrokenJSON: true, Variant: 1}, weatherTools, func(t *testing.T, r httpResult) {
			if a := gjson.GetBytes(r.body, "choices.0.message.tool_calls.0.function.arguments").Str; json.Valid([]byte(a)) {
				t.Errorf("arguments = %q; want invalid JSON", a)
			}
		}},
		{"wrap double-encoded", Fault{WrapToolArgs: true}, weatherTools, func(t *testing.T, r httpResult) {
			a := gjson.GetBytes(r.body, "choices.0.message.tool_calls.0.function.arguments").Str
			var inner string
			if err := json.Unmarshal([]byte(a), &inner); err != nil || !strings.HasPrefix(inner, `{"city"`) {
				t.Errorf("arguments = %q; want a JSON string holding the JSON (%v)", a, err)
			}
		}},
		{"wrap arguments key", Fault{WrapToolArgs: true, Variant: 1}, weatherTools, func(t *testing.T, r httpResult) {
			a := gjson.GetBytes(r.body, "choices.0.message.tool_calls.0.function.arguments").Str
			if gjson.Get(a, "arguments.city").Str != "ok" {
				t.Errorf("arguments = %q; want {\"arguments\":{...}}", a)
			}
		}},
		{"wrap fences", Fault{WrapToolArgs: true, Variant: 2}, weatherTools, func(t *testing.T, r httpResult) {
			a := gjson.GetBytes(r.body, "choices.0.message.tool_calls.0.function.arguments").Str
			if !strings.HasPrefix(a, "```json\n{") || !strings.HasSuffix(a, "}\n```") {
				t.Errorf("arguments = %q; want fenced", a)
			}
		}},
		{"legacy function_call", Fault{LegacyFunctionCall: true}, weatherTools, func(t *testing.T, r httpResult) {
			g := gjson.ParseBytes(r.body)
			if g.Get("choices.0.message.tool_calls").Exists() || g.Get("choices.0.message.function_call.name").Str != "get_weather" || g.Get("choices.0.finish_reason").Str != "function_call" {
				t.Errorf("reply = %s", r.body)
			}
		}},
		{"tokens", Fault{Tokens: 5000}, "", func(t *testing.T, r httpResult) {
			if got := gjson.GetBytes(r.body, "usage.completion_tokens").Int(); got != 5000 {
				t.Errorf("completion_tokens = %d", got)
			}
		}},
		{"disconnect non-stream", Fault{Disconnect: true}, "", func(t *testing.T, r httpResult) {
			if r.err == nil {
				t.Errorf("no error on a cut body: %d %s", r.status, r.body)
			}
		}},
		{"disconnect stream at headers", Fault{Disconnect: true}, `"stream":true`, func(t *testing.T, r httpResult) {
			if r.status != 200 || r.err == nil || len(r.body) != 0 {
				t.Errorf("got %d err=%v body=%q; want 200 then a cut", r.status, r.err, r.body)
			}
		}},
		{"disconnect stream after 2", Fault{DisconnectAfter: 2}, `"stream":true`, func(t *testing.T, r httpResult) {
			if r.status != 200 || r.err == nil || bytes.Count(r.body, []byte("data: ")) != 2 || bytes.Contains(r.body, []byte("[DONE]")) {
				t.Errorf("got %d err=%v body=%q; want 2 chunks then a cut", r.status, r.err, r.body)
			}
		}},
		{"rate 0 is always", Fault{Rate: 0, Status: 500}, "", func(t *testing.T, r httpResult) {
			if r.status != 500 {
				t.Errorf("status %d", r.status)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m.SetFault("*", tt.fault)
			defer m.ClearFaults()
			start := time.Now()
			r := post(t, "POST", url+"/v1/chat/completions", chatBody(tt.extra))
			if took := time.Since(start); took < tt.fault.Delay {
				t.Errorf("answered after %v; want ≥ %v", took, tt.fault.Delay)
			}
			tt.check(t, r)
		})
	}

	t.Run("model-specific wins", func(t *testing.T) {
		m.SetFault("*", Fault{Status: 500})
		m.SetFault("healthy", Fault{})
		defer m.ClearFaults()
		if r := post(t, "POST", url+"/v1/chat/completions", `{"model":"healthy","messages":[]}`); r.status != 200 {
			t.Errorf("healthy status = %d", r.status)
		}
		if r := post(t, "POST", url+"/v1/chat/completions", `{"model":"other","messages":[]}`); r.status != 500 {
			t.Errorf("other status = %d", r.status)
		}
		m.ClearFault("healthy")
		if r := post(t, "POST", url+"/v1/chat/completions", `{"model":"healthy","messages":[]}`); r.status != 500 {
			t.Errorf("after ClearFault status = %d", r.status)
		}
	})

	t.Run("rate", func(t *testing.T) {
		m.SetFault("*", Fault{Rate: 0.5, Status: 500})
		defer m.ClearFaults()
		fails := 0
		for range 200 {
			if post(t, "POST", url+"/v1/chat/completions", chatBody("")).status == 500 {
				fails++
			}
		}
		if fails < 60 || fails > 140 {
			t.Errorf("%d of 200 failed at rate 0.5", fails)
		}
	})
}

func TestMockSlowChunks(t *testing.T) {
	m, url := startMock(t, MockOptions{Chunks: 3})
	m.SetFault("*", Fault{SlowChunks: 60 * time.Millisecond})
	c := NewStreamClient(4)
	st, err := c.Do(context.Background(), url+"/v1/chat/completions", nil, []byte(chatBody(`"stream":true`)))
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxGap < 50*time.Millisecond || st.Total < 110*time.Millisecond {
		t.Errorf("max gap %v total %v; want ≈ 60ms gaps", st.MaxGap, st.Total)
	}
}

func TestMockHang(t *testing.T) {
	m, url := startMock(t, MockOptions{})
	m.SetFault("*", Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(chatBody("")))
	start := time.Now()
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 190*time.Millisecond {
		t.Errorf("hang: err = %v after %v; want the client's deadline", err, time.Since(start))
	}

	// Close releases a hanging request promptly.
	done := make(chan error, 1)
	go func() {
		_, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(chatBody("")))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start = time.Now()
	m.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("hung request got an answer")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not release the hanging request")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v", took)
	}
}

func TestMockRuntimeControl(t *testing.T) {
	m, url := startMock(t, MockOptions{})
	ctl := MockControl{BaseURL: url}
	ctx := context.Background()
	if err := ctl.SetFault(ctx, "gpt-test", Fault{Status: 503, Delay: 10 * time.Millisecond, SlowChunks: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	got := m.Faults()["gpt-test"]
	if got.Status != 503 || got.Delay != 10*time.Millisecond || got.SlowChunks != 2*time.Second {
		t.Errorf("fault after POST = %+v", got)
	}
	if r := post(t, "POST", url+"/v1/chat/completions", chatBody("")); r.status != 503 {
		t.Errorf("status = %d; want 503", r.status)
	}
	r := post(t, "GET", url+"/mock/faults", "")
	if gjson.GetBytes(r.body, "gpt-test.slow_chunks").Str != "2s" {
		t.Errorf("GET /mock/faults = %s", r.body)
	}
	stats, err := ctl.Stats(ctx)
	if err != nil || stats.Requests != 1 || stats.Models["gpt-test"] != 1 {
		t.Errorf("stats = %+v, %v", stats, err)
	}
	if err := ctl.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	if r := post(t, "POST", url+"/v1/chat/completions", chatBody("")); r.status != 200 {
		t.Errorf("status after clear = %d", r.status)
	}

	for _, bad := range []string{
		`{"model":"m","fault":{"delay":"soon"}}`,
		`{"model":"m","fault":{"brokenjson":true}}`,
		`{"model":"m","fault":{"status":42}}`,
		`{"modle":"m"}`,
	} {
		if r := post(t, "POST", url+"/mock/faults", bad); r.status != 400 || !gjson.GetBytes(r.body, "error.message").Exists() {
			t.Errorf("POST /mock/faults %s = %d %s; want 400", bad, r.status, r.body)
		}
	}
	if len(m.Faults()) != 0 {
		t.Errorf("bad requests changed faults: %v", m.Faults())
	}
}

func TestFaultJSONRoundTrip(t *testing.T) {
	f := Fault{Rate: 0.2, Status: 429, RetryAfter: 2 * time.Second, ErrorCode: "x", Delay: time.Second, Hang: true,
		BrokenJSON: true, WrapToolArgs: true, LegacyFunctionCall: true, SlowChunks: 3 * time.Second,
		DisconnectAfter: 4, Disconnect: true, Tokens: 9, Variant: -1}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var got Fault
	if err := json.Unmarshal(b, &got); err != nil || got != f {
		t.Errorf("round trip of %s = %+v, %v; want %+v", b, got, err, f)
	}
}

func TestMockServeInMemory(t *testing.T) {
	m := NewMock(MockOptions{})
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- m.Serve(ln) }()
	c := &fasthttp.HostClient{Addr: "mock", Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://mock/v1/chat/completions")
	req.Header.SetMethod("POST")
	req.SetBodyString(chatBody(`"stream":true`))
	if err := c.DoTimeout(req, resp, 2*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("do: %v %d", err, resp.StatusCode())
	}
	if !bytes.HasSuffix(resp.Body(), []byte("data: [DONE]\n\n")) {
		t.Errorf("body = %q", resp.Body())
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

func TestRunMockProvider(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- RunMockProvider(addr, MockOptions{RequestIDPrefix: "run"}, stop) }()
	var r httpResult
	for range 50 {
		if r = post(t, "GET", "http://"+addr+"/v1/models", ""); r.err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.status != 200 || !strings.HasPrefix(r.header.Get("x-request-id"), "run-") {
		t.Fatalf("models = %d %v", r.status, r.err)
	}
	close(stop)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunMockProvider = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunMockProvider did not stop")
	}
}
