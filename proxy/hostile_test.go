package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/loadtest"
)

// hostileConfig serves one route over an upstream the test controls, with
// the default 8 MiB body limit (the nesting bomb of issue 12.1 is 5.6 MiB,
// under it) and a route schema, so responses are contract-checked.
const hostileConfig = `
data_dir: {{DATA}}
admin_token_env: ADMIN_TOKEN
providers:
  - { name: primary, base_url: "http://%s/v1", api_key_env: PRIMARY_KEY, timeout: 5s }
keys:
  - { name: app, key_env: APP_KEY }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: upstream-model } ]
`

var hostileEnv = map[string]string{"PRIMARY_KEY": "sk-provider-secret-123", "APP_KEY": "gw-app-key", "ADMIN_TOKEN": "admin-token-1"}

// startUpstream serves h on a loopback port and returns its address.
func startUpstream(t testing.TB, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h, MaxRequestBodySize: 16 << 20}
	go srv.Serve(ln) //nolint:errcheck // ends at Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// okCompletion answers every request with a small valid chat.completion.
func okCompletion(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"id":"c1","object":"chat.completion","model":"upstream-model","choices":[{"index":0,"message":{"role":"assistant","content":"{\"ok\":true}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`)
}

func apiErrorOf(t *testing.T, r result) (msg, typ, param string) {
	t.Helper()
	m := r.json(t)
	e, _ := m["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error object in %s", r.body)
	}
	msg, _ = e["message"].(string)
	typ, _ = e["type"].(string)
	param, _ = e["param"].(string)
	return msg, typ, param
}

// TestHostileNestingBomb sends bodies nested millions of levels deep, under
// the body limit, through the real handler. Issue 12.1: gjson.ValidBytes
// recursed once per '[' and ~5.6 MiB of them killed the process with a
// fatal stack overflow, which no recover catches.
func TestHostileNestingBomb(t *testing.T) {
	up := startUpstream(t, okCompletion)
	tg := startGateway(t, fmt.Sprintf(hostileConfig, up), hostileEnv)
	const n = 5_600_000
	bombs := []struct{ name, body string }{
		{"open brackets", strings.Repeat("[", n)},
		{"balanced brackets", strings.Repeat("[", n/2) + strings.Repeat("]", n/2)},
		{"open objects", strings.Repeat(`{"a":`, n/5)},
		{"inside messages", `{"model":"support-bot","messages":` + strings.Repeat("[", n)},
		{"inside content", `{"model":"support-bot","messages":[{"role":"user","content":` + strings.Repeat("[", n) + `}]}`},
		{"inside a tool schema", `{"model":"support-bot","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":` + strings.Repeat(`{"properties":{"a":`, n/20) + `}}]}`},
	}
	for _, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", b.body)
			if r.status != 400 {
				t.Fatalf("status %d; want 400: %.300s", r.status, r.body)
			}
			msg, typ, _ := apiErrorOf(t, r)
			if typ != "invalid_request_error" || !strings.Contains(msg, "nests deeper") {
				t.Errorf("error %q (%s); want an invalid_request_error about nesting", msg, typ)
			}
		})
	}
	// Still up and serving.
	if r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", "")); r.status != 200 {
		t.Fatalf("after the bombs: status %d: %s", r.status, r.body)
	}
	// A refused body is kept in its record only as a short prefix, so a
	// client sending bombs back to back cannot make records hold megabytes.
	for _, rec := range tg.records(t, len(bombs)+1) {
		if rec.Status == 400 && len(rec.Request) > 4<<10 {
			t.Errorf("record %s of a refused request keeps %d bytes of body", rec.GatewayRequestID, len(rec.Request))
		}
	}
}

// TestHostileUpstreamNesting has the upstream answer with bodies and stream
// events nested millions of levels deep (issue 12.1: every byte of an
// upstream response is checked without recursion too). The gateway relays
// or refuses them but stays up, records each request, and serves the
// record on the admin API.
func TestHostileUpstreamNesting(t *testing.T) {
	const n = 2_000_000
	deep := strings.Repeat("[", n) + strings.Repeat("]", n)
	bodies := map[string]string{
		"deep-body":    `{"choices":[{"index":0,"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}],"x":` + deep + `}`,
		"open-body":    `{"choices":[{"index":0,"message":{"role":"assistant","content":` + strings.Repeat("[", n),
		"deep-content": `{"choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("[", n) + `"},"finish_reason":"stop"}]}`,
		"deep-args":    `{"choices":[{"index":0,"message":{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"` + strings.Repeat(`{\"a\":`, n/8) + `"}}]},"finish_reason":"tool_calls"}]}`,
		"deep-usage":   `{"choices":[{"index":0,"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}],"usage":` + strings.Repeat(`{"u":`, n/5) + `}`,
	}
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		body := ctx.PostBody()
		for k, v := range bodies {
			if strings.Contains(string(body), k) {
				if strings.Contains(string(body), `"stream":true`) {
					ctx.SetContentType("text/event-stream")
					ctx.SetBodyString("data: " + strings.ReplaceAll(v, `"message"`, `"delta"`) + "\n\ndata: " + deep + "\n\ndata: [DONE]\n\n")
					return
				}
				ctx.SetContentType("application/json")
				ctx.SetBodyString(v)
				return
			}
		}
		okCompletion(ctx)
	})
	tg := startGateway(t, fmt.Sprintf(hostileConfig, up), hostileEnv)
	sent := 0
	for name := range bodies {
		for _, stream := range []string{"false", "true"} {
			t.Run(name+"/stream="+stream, func(t *testing.T) {
				body := fmt.Sprintf(`{"model":"support-bot","stream":%s,"messages":[{"role":"user","content":%q}],"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}`, stream, name)
				r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", body)
				sent++
				if r.status != 200 && r.status != 502 {
					t.Fatalf("status %d: %.300s", r.status, r.body)
				}
				id := r.header.Get("x-request-id")
				var a result
				for range 100 { // the record is written asynchronously
					if a = do(t, "GET", tg.admin+"/admin/requests/"+id, "admin-token-1", ""); a.status != 404 {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if a.status != 200 {
					t.Fatalf("GET /admin/requests/%s: %d %.300s", id, a.status, a.body)
				}
			})
		}
	}
	if r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", "")); r.status != 200 {
		t.Fatalf("after the bombs: status %d: %s", r.status, r.body)
	}
	tg.records(t, sent+1)
}

// TestHostileNumbers: numbers that do not fit a float64 (1e999 reads as
// +Inf) or fall outside OpenAI's range are refused with 400 naming the
// parameter, and the refused request's record is served by the admin API.
// Issue 12.2: "temperature": 1e999 was forwarded, GET /admin/requests/{id}
// answered 500 and the incident holding the record panicked.
func TestHostileNumbers(t *testing.T) {
	up := startUpstream(t, okCompletion)
	tg := startGateway(t, fmt.Sprintf(hostileConfig, up), hostileEnv)
	tests := []struct{ param, value string }{
		{"temperature", "1e999"},
		{"temperature", "-1e999"},
		{"temperature", "2.5"},
		{"top_p", "1e999"},
		{"frequency_penalty", "-1e400"},
		{"presence_penalty", "3"},
		{"n", "1e999"},
		{"n", "1.5"},
		{"seed", "1e999"},
		{"seed", "1e30"},
		{"top_logprobs", "1e999"},
		{"max_tokens", "1e999"},
		{"max_completion_tokens", "-1e999"},
	}
	for _, tt := range tests {
		t.Run(tt.param+"="+tt.value, func(t *testing.T) {
			r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", `"`+tt.param+`":`+tt.value))
			if r.status != 400 {
				t.Fatalf("status %d; want 400: %s", r.status, r.body)
			}
			_, typ, param := apiErrorOf(t, r)
			if typ != "invalid_request_error" || param != tt.param {
				t.Errorf("error %s; want invalid_request_error with param %q", r.body, tt.param)
			}
			id := r.header.Get("x-request-id")
			var a result
			for range 100 {
				if a = do(t, "GET", tg.admin+"/admin/requests/"+id, "admin-token-1", ""); a.status != 404 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if a.status != 200 {
				t.Fatalf("GET /admin/requests/%s: %d %s", id, a.status, a.body)
			}
		})
	}
	r := do(t, "POST", tg.api+"/v1/embeddings", "gw-app-key", `{"model":"support-bot","input":"x","dimensions":1e999}`)
	if _, _, param := apiErrorOf(t, r); r.status != 400 || param != "dimensions" {
		t.Errorf("embeddings dimensions 1e999: %d %s; want 400 naming dimensions", r.status, r.body)
	}
	ok := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", `"temperature":2,"top_p":0,"seed":-12345,"n":1`))
	if ok.status != 200 {
		t.Fatalf("in-range numbers: %d %s", ok.status, ok.body)
	}
}

// TestHostileDuplicateKeys: a body that repeats a key the gateway reads is
// refused with 400 naming it and never reaches the upstream (issue 12.10:
// with include_usage twice the gateway and the upstream read different
// values, streams reported no usage and TPM was never charged).
func TestHostileDuplicateKeys(t *testing.T) {
	var upstreamSaw atomic.Int64
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) { upstreamSaw.Add(1); okCompletion(ctx) })
	tg := startGateway(t, fmt.Sprintf(hostileConfig, up), hostileEnv)
	tests := []struct{ extra, param string }{
		{`"stream":true,"stream_options":{"include_usage":false,"include_usage":true}`, "stream_options.include_usage"},
		{`"stream":false,"stream":true`, "stream"},
		{`"response_format":{"type":"json_object","type":"text"}`, "response_format.type"},
		{`"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"},"parameters":{}}}]`, "tools[0].function.parameters"},
	}
	for _, tt := range tests {
		r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", tt.extra))
		if _, typ, param := apiErrorOf(t, r); r.status != 400 || typ != "invalid_request_error" || param != tt.param {
			t.Errorf("%s: %d %s; want 400 naming %s", tt.extra, r.status, r.body, tt.param)
		}
	}
	r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", `{"model":"support-bot","model":"other","messages":[{"role":"user","content":"x"}]}`)
	if _, _, param := apiErrorOf(t, r); r.status != 400 || param != "model" {
		t.Errorf("duplicate model: %d %s", r.status, r.body)
	}
	if n := upstreamSaw.Load(); n != 0 {
		t.Errorf("the upstream saw %d refused requests", n)
	}
}

const modelNamesConfig = `
data_dir: {{DATA}}
admin_token_env: ADMIN_TOKEN
providers:
  - { name: primary, base_url: "http://%s/v1", api_key_env: PRIMARY_KEY, timeout: 5s }
keys:
  - { name: app, key_env: APP_KEY }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: upstream-model } ]
  - name: passthrough
    match: ["gpt-*"]
    targets: [ { provider: primary } ]
`

// TestHostileModelNames: client model names are capped at 256 bytes, a 404
// echoes only a short prefix, and metrics are labelled by the configured
// target, so a client sending many distinct names through a passthrough
// target grows no series (issue 12.7: 300 requests with 1 MiB names took
// RSS to 2.5 GiB and /metrics to 314 MB).
func TestHostileModelNames(t *testing.T) {
	up := startUpstream(t, okCompletion)
	tg := startGateway(t, fmt.Sprintf(modelNamesConfig, up), hostileEnv)

	huge := "gpt-" + strings.Repeat("x", 1<<20)
	for _, m := range []string{huge, "gpt-" + strings.Repeat("é", 127)} {
		r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat(m, ""))
		if _, typ, param := apiErrorOf(t, r); r.status != 400 || typ != "invalid_request_error" || param != "model" {
			t.Errorf("%d-byte model: %d %.200s; want 400 naming model", len(m), r.status, r.body)
		}
		if len(r.body) > 512 || r.header.Get("x-cairn-target") != "" {
			t.Errorf("%d-byte model: %d-byte answer, x-cairn-target %.40q; want a short answer and no target", len(m), len(r.body), r.header.Get("x-cairn-target"))
		}
	}

	unknown := "nope-" + strings.Repeat("y", 250)
	r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat(unknown, ""))
	if msg, _, param := apiErrorOf(t, r); r.status != 404 || param != "model" || strings.Contains(msg, unknown[:100]) || !strings.Contains(msg, unknown[:64]+"…") {
		t.Errorf("unknown model: %d %s; want 404 echoing a 64-byte prefix", r.status, r.body)
	}

	const distinct = 200
	for i := range distinct {
		m := fmt.Sprintf("gpt-%03d-%s", i, strings.Repeat("z", 240))
		r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat(m, ""))
		if r.status != 200 {
			t.Fatalf("passthrough %d: %d %s", i, r.status, r.body)
		}
		if got := r.header.Get("x-cairn-target"); got != "primary/"+m {
			t.Fatalf("x-cairn-target = %.60q; want primary/ and the (capped) model", got)
		}
	}
	tg.records(t, distinct+3)
	metrics := do(t, "GET", tg.admin+"/metrics", "admin-token-1", "")
	if strings.Contains(string(metrics.body), "zzzzzzzz") || strings.Contains(string(metrics.body), "yyyyyyyy") {
		t.Fatalf("/metrics carries client model names")
	}
	if !strings.Contains(string(metrics.body), `target="primary/*"`) {
		t.Errorf("/metrics has no series for the passthrough target primary/*:\n%.2000s", metrics.body)
	}
	if len(metrics.body) > 64<<10 {
		t.Errorf("/metrics is %d bytes after %d distinct model names; want it bounded by the config", len(metrics.body), distinct)
	}
}

// hugeTools returns a tools array of about n bytes of ordinary function
// definitions, made distinct by tag.
func hugeTools(n int, tag string) string {
	var b strings.Builder
	b.WriteString("[")
	for i := 0; b.Len() < n-400; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"type":"function","function":{"name":"f%d%s","parameters":{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"number"}},"required":["a"]}}}`, i, tag)
	}
	b.WriteString("]")
	return b.String()
}

// TestHostileToolsArray: a 1 MiB tools array is refused with 400 on tools
// before anything is compiled (issue 12.8: each one compiled to ~17 MiB
// kept and 0.5 s of CPU, in a cache of 1,024 entries).
func TestHostileToolsArray(t *testing.T) {
	up := startUpstream(t, okCompletion)
	tg := startGateway(t, fmt.Sprintf(hostileConfig, up), hostileEnv)
	for i := range 3 {
		t0 := time.Now()
		r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", `"tools":`+hugeTools(1<<20, strconv.Itoa(i))))
		if _, typ, param := apiErrorOf(t, r); r.status != 400 || typ != "invalid_request_error" || param != "tools" {
			t.Fatalf("1 MiB tools: %d %.300s; want 400 on tools", r.status, r.body)
		}
		t.Logf("1 MiB tools refused in %v", time.Since(t0))
	}
	if st := tg.contracts.Stats(); st.Compiles != 0 || st.Cost > 64<<10 {
		t.Errorf("contracts cache %+v; want nothing compiled and next to nothing kept", st)
	}
}

const streamErrConfig = `
data_dir: {{DATA}}
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 2s, stream_idle_timeout: 2s, stream_max_duration: 400ms }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: primary-model } ]
`

// sseErrorMessage returns the message of the terminal SSE error event in
// body, or "".
func sseErrorMessage(t *testing.T, body []byte) string {
	t.Helper()
	for _, line := range strings.Split(string(body), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.HasPrefix(data, `{"error"`) {
			var e struct {
				Error struct{ Message string } `json:"error"`
			}
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Fatalf("error event is not JSON: %s", data)
			}
			return e.Error.Message
		}
	}
	return ""
}

// TestHostileStreamErrorTexts: the terminal SSE error event of a broken
// stream names what happened without the upstream's socket addresses, and
// a stream cut by stream_max_duration says so (issue 12.15: it said the
// stream "stalled beyond its idle timeout", and resets carried
// "read tcp 127.0.0.1:…->127.0.0.1:…").
func TestHostileStreamErrorTexts(t *testing.T) {
	m, addr := startMock(t, loadtest.MockOptions{Chunks: 40, ChunkInterval: 50 * time.Millisecond})
	tg := startGateway(t, fmt.Sprintf(streamErrConfig, addr), nil)
	addrLike := regexp.MustCompile(`\d+\.\d+\.\d+\.\d+|:\d{2,5}\b|\[[0-9a-f:]+\]`)

	t.Run("max duration", func(t *testing.T) {
		r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", `"stream":true`))
		msg := sseErrorMessage(t, r.body)
		if !strings.Contains(msg, "stream_max_duration") || strings.Contains(msg, "idle") {
			t.Errorf("error event %q; want it to name stream_max_duration, not the idle timeout", msg)
		}
		if addrLike.MatchString(msg) {
			t.Errorf("error event %q carries an address", msg)
		}
	})
	t.Run("reset", func(t *testing.T) {
		m.SetFault("*", loadtest.Fault{Disconnect: true, DisconnectAfter: 2})
		defer m.ClearFaults()
		r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", `"stream":true`))
		msg := sseErrorMessage(t, r.body)
		if msg == "" || addrLike.MatchString(msg) {
			t.Errorf("error event %q; want one without socket addresses", msg)
		}
	})
}
