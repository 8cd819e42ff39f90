package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/loadtest"
)

const baseConfig = `
data_dir: {{DATA}}
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
release: "test-1"
server: { max_body_bytes: 65536, max_header_bytes: 8192 }
providers:
  - { name: primary, base_url: "http://%s/v1", api_key_env: PRIMARY_KEY, timeout: 2s }
  - { name: backup, base_url: "http://%s/v1", timeout: 2s }
keys:
  - { name: app, key_env: APP_KEY }
  - { name: limited, key_env: LIMITED_KEY, routes: [other] }
routes:
  - name: support-bot
    prompt: { version: v7, system: "You are terse." }
    flags: { strict_json: true }
    targets:
      - { provider: primary, model: upstream-model }
    fallbacks:
      - { provider: backup, model: backup-model }
  - name: other
    match: ["gpt-4o*"]
    targets:
      - { provider: backup }
`

var testEnv = map[string]string{"PRIMARY_KEY": "sk-provider-secret-123", "APP_KEY": "gw-app-key", "LIMITED_KEY": "gw-limited-key"}

func twoMocks(t *testing.T) (*loadtest.Mock, *loadtest.Mock, *testGateway) {
	t.Helper()
	m1, a1 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "p1"})
	m2, a2 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "p2"})
	tg := startGateway(t, fmt.Sprintf(baseConfig, a1, a2), testEnv)
	return m1, m2, tg
}

func TestChatPlain(t *testing.T) {
	m1, _, tg := twoMocks(t)
	r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", ""), "x-client-request-id", "client-42")
	if r.status != 200 {
		t.Fatalf("status = %d; want 200: %s", r.status, r.body)
	}
	for h, want := range map[string]string{
		"x-cairn-route": "support-bot", "x-cairn-cohort": "stable", "x-cairn-target": "primary/upstream-model",
		"x-cairn-contract": "none",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("header %s = %q; want %q", h, got, want)
		}
	}
	id := r.header.Get("x-request-id")
	if !strings.HasPrefix(id, "req_") || len(id) != 30 {
		t.Errorf("x-request-id = %q; want req_ + 26 chars", id)
	}
	if p := r.header.Get("x-cairn-provider-request-id"); !strings.HasPrefix(p, "p1-") {
		t.Errorf("x-cairn-provider-request-id = %q; want the mock's p1-…", p)
	}
	hdrs, body := m1.LastRequest()
	if got := hdrs["Authorization"]; got != "Bearer sk-provider-secret-123" {
		t.Errorf("upstream Authorization = %q; want the provider key", got)
	}
	if !strings.Contains(string(body), `"model":"upstream-model"`) {
		t.Errorf("upstream body did not get the upstream model: %s", body)
	}
	if !strings.Contains(string(body), `"role":"system","content":"You are terse."`) {
		t.Errorf("upstream body lacks the route's system prompt: %s", body)
	}
	if tp := hdrs["Traceparent"]; tp == "" {
		t.Errorf("no traceparent sent upstream")
	}
	recs := tg.records(t, 1)
	rec := recs[0]
	if rec.GatewayRequestID != id || rec.ClientRequestID != "client-42" || !strings.HasPrefix(rec.ProviderRequestID, "p1-") {
		t.Errorf("record IDs = %q %q %q", rec.GatewayRequestID, rec.ClientRequestID, rec.ProviderRequestID)
	}
	if rec.Key != "app" || rec.Route != "support-bot" || rec.PromptVersion != "v7" || rec.Release != "test-1" || rec.Outcome != "ok" {
		t.Errorf("record = %+v", rec)
	}
	if rec.Usage.TotalTokens == 0 {
		t.Errorf("record has no usage")
	}
}

func TestErrors(t *testing.T) {
	m1, _, tg := twoMocks(t)
	big := strings.Repeat("x", 70000)
	tests := []struct {
		name, key, path, body string
		hdr                   []string
		status                int
		code                  string
	}{
		{"no key", "", "/v1/chat/completions", chat("support-bot", ""), nil, 401, "invalid_api_key"},
		{"wrong key", "nope", "/v1/chat/completions", chat("support-bot", ""), nil, 401, "invalid_api_key"},
		{"unknown model", "gw-app-key", "/v1/chat/completions", chat("nope", ""), nil, 404, "model_not_found"},
		{"not allowed", "gw-limited-key", "/v1/chat/completions", chat("support-bot", ""), nil, 403, "model_not_allowed"},
		{"bad json", "gw-app-key", "/v1/chat/completions", `{"model":`, nil, 400, ""},
		{"no messages", "gw-app-key", "/v1/chat/completions", `{"model":"support-bot"}`, nil, 400, ""},
		{"body too large", "gw-app-key", "/v1/chat/completions", `{"model":"support-bot","x":"` + big + `"}`, nil, 413, "request_too_large"},
		{"headers too large", "gw-app-key", "/v1/chat/completions", chat("support-bot", ""), []string{"x-big", strings.Repeat("a", 9000)}, 431, "headers_too_large"},
		{"unknown path", "gw-app-key", "/v1/nope", "{}", nil, 404, "unknown_url"},
	}
	before := m1.Requests()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "POST", tg.api+tt.path, tt.key, tt.body, tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("status = %d; want %d: %s", r.status, tt.status, r.body)
			}
			e := r.json(t)["error"].(map[string]any)
			if e["message"] == "" || e["type"] == "" {
				t.Errorf("error lacks message/type: %s", r.body)
			}
			if tt.code != "" && r.errorCode() != tt.code {
				t.Errorf("code = %q; want %q", r.errorCode(), tt.code)
			}
			if r.header.Get("x-request-id") == "" {
				t.Errorf("no x-request-id on an error")
			}
			if strings.Contains(string(r.body), "sk-provider-secret") {
				t.Errorf("error leaks the provider key")
			}
		})
	}
	if got := m1.Requests() - before; got != 0 {
		t.Errorf("upstream saw %d requests from refused ones; want 0", got)
	}
	recs := tg.records(t, len(tests))
	if len(recs) != len(tests) {
		t.Errorf("got %d records for %d requests", len(recs), len(tests))
	}
}

func TestModels(t *testing.T) {
	_, _, tg := twoMocks(t)
	r := do(t, "GET", tg.api+"/v1/models", "gw-app-key", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"id":"support-bot"`) || !strings.Contains(string(r.body), `"object":"list"`) {
		t.Fatalf("models = %d %s", r.status, r.body)
	}
	r = do(t, "GET", tg.api+"/v1/models", "gw-limited-key", "")
	if strings.Contains(string(r.body), "support-bot") {
		t.Errorf("a key limited to 'other' sees support-bot: %s", r.body)
	}
}

func TestGlobPassthrough(t *testing.T) {
	_, m2, tg := twoMocks(t)
	r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("gpt-4o-mini", ""))
	if r.status != 200 || r.header.Get("x-cairn-route") != "other" || r.header.Get("x-cairn-target") != "backup/gpt-4o-mini" {
		t.Fatalf("status %d route %q target %q", r.status, r.header.Get("x-cairn-route"), r.header.Get("x-cairn-target"))
	}
	_, body := m2.LastRequest()
	if !strings.Contains(string(body), `"model":"gpt-4o-mini"`) {
		t.Errorf("passthrough changed the model: %s", body)
	}
}

func TestFailover(t *testing.T) {
	for _, fault := range []struct {
		name string
		f    loadtest.Fault
	}{
		{"5xx", loadtest.Fault{Status: 503}},
		{"429", loadtest.Fault{Status: 429}},
		{"timeout", loadtest.Fault{Hang: true}},
	} {
		t.Run(fault.name, func(t *testing.T) {
			m1, m2, tg := twoMocks(t)
			m1.SetFault("*", fault.f)
			r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", ""))
			if r.status != 200 {
				t.Fatalf("status = %d; want 200 from the fallback: %s", r.status, r.body)
			}
			if got := r.header.Get("x-cairn-target"); got != "backup/backup-model" {
				t.Errorf("target = %q; want the fallback", got)
			}
			if m2.Requests() != 1 {
				t.Errorf("fallback saw %d requests; want 1", m2.Requests())
			}
			rec := tg.records(t, 1)[0]
			if len(rec.Attempts) != 2 || rec.Attempts[0].Provider != "primary" || rec.Attempts[1].Provider != "backup" {
				t.Errorf("attempts = %+v", rec.Attempts)
			}
		})
	}
}

func TestAllUpstreamsFail(t *testing.T) {
	m1, m2, tg := twoMocks(t)
	m1.SetFault("*", loadtest.Fault{Status: 500})
	m2.SetFault("*", loadtest.Fault{Status: 502})
	r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", ""))
	// No fallback answered: the client sees the last upstream's answer
	// (issue 14.3), here the backup's 502, and which target gave it.
	if r.status != 502 || r.header.Get("x-cairn-target") != "backup/backup-model" || !strings.Contains(string(r.body), "The server had an error") {
		t.Fatalf("status = %d target %q body %s; want the backup's 502", r.status, r.header.Get("x-cairn-target"), r.body)
	}
	m1.SetFault("*", loadtest.Fault{Hang: true})
	m2.SetFault("*", loadtest.Fault{Hang: true})
	start := time.Now()
	r = do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", ""))
	if r.status != 504 {
		t.Fatalf("status = %d; want 504: %s", r.status, r.body)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("two 2s timeouts took %v", el)
	}
}

func TestUpstream4xxRelayed(t *testing.T) {
	m1, m2, tg := twoMocks(t)
	m1.SetFault("*", loadtest.Fault{Status: 400})
	r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", ""))
	if r.status != 400 {
		t.Fatalf("status = %d; want the provider's 400 relayed", r.status)
	}
	if m2.Requests() != 0 {
		t.Errorf("a 4xx was retried on the fallback")
	}
}

func readSSE(t *testing.T, r result) (data []string, done bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			if d == "[DONE]" {
				done = true
				continue
			}
			data = append(data, d)
		}
	}
	return data, done
}

func TestStreaming(t *testing.T) {
	_, _, tg := twoMocks(t)
	for _, usage := range []bool{false, true} {
		t.Run(fmt.Sprintf("include_usage=%v", usage), func(t *testing.T) {
			extra := `"stream":true`
			if usage {
				extra += `,"stream_options":{"include_usage":true}`
			}
			r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", extra))
			if r.status != 200 || !strings.HasPrefix(r.header.Get("content-type"), "text/event-stream") {
				t.Fatalf("status %d content-type %q", r.status, r.header.Get("content-type"))
			}
			events, done := readSSE(t, r)
			if !done || len(events) < 2 {
				t.Fatalf("events = %d, done = %v", len(events), done)
			}
			last := events[len(events)-1]
			hasUsage := strings.Contains(last, `"choices":[]`)
			if hasUsage != usage {
				t.Errorf("usage chunk present = %v; want %v (last event %s)", hasUsage, usage, last)
			}
		})
	}
	recs := tg.records(t, 2)
	for _, rec := range recs {
		if rec.Usage.TotalTokens == 0 {
			t.Errorf("stream record %s has no usage: upstream usage must always be requested", rec.GatewayRequestID)
		}
		if rec.TTFTMS <= 0 || !rec.Params.Stream {
			t.Errorf("stream record ttft %v stream %v", rec.TTFTMS, rec.Params.Stream)
		}
	}
}

func TestStreamDisconnectBeforeFirstChunkFailsOver(t *testing.T) {
	m1, _, tg := twoMocks(t)
	m1.SetFault("*", loadtest.Fault{Disconnect: true, DisconnectAfter: 0})
	r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", `"stream":true`))
	if r.status != 200 || r.header.Get("x-cairn-target") != "backup/backup-model" {
		t.Fatalf("status %d target %q; want the fallback", r.status, r.header.Get("x-cairn-target"))
	}
	if _, done := readSSE(t, r); !done {
		t.Errorf("fallback stream incomplete")
	}
}

func TestStreamBreaksMidway(t *testing.T) {
	m1, m2, tg := twoMocks(t)
	m1.SetFault("*", loadtest.Fault{Disconnect: true, DisconnectAfter: 3})
	r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", `"stream":true`))
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	events, done := readSSE(t, r)
	if done {
		t.Errorf("a broken stream ended with [DONE]")
	}
	if len(events) == 0 || !strings.Contains(events[len(events)-1], `"error"`) {
		t.Errorf("last event is not an error event: %v", events)
	}
	if m2.Requests() != 0 {
		t.Errorf("a stream that had sent bytes was retried")
	}
	rec := tg.records(t, 1)[0]
	if rec.Outcome != capture.OutcomeUpstreamError {
		t.Errorf("outcome = %q; want upstream_error", rec.Outcome)
	}
}

func TestClientDisconnectMidStream(t *testing.T) {
	m1, _, tg := twoMocks(t)
	m1.SetFault("*", loadtest.Fault{SlowChunks: 200 * time.Millisecond})
	baseline := requestGoroutines()
	conn, err := net.Dial("tcp", strings.TrimPrefix(tg.api, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := chat("support-bot", `"stream":true`)
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer gw-app-key\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	if n := requestGoroutines(); n <= baseline {
		t.Fatalf("gateway goroutines = %d mid-stream, baseline %d: the count does not see the relay", n, baseline)
	}
	conn.Close()
	rec := tg.records(t, 1)[0]
	if rec.Outcome != capture.OutcomeClientClosed {
		t.Errorf("outcome = %q; want client_closed", rec.Outcome)
	}
	deadline := time.Now().Add(3 * time.Second)
	for requestGoroutines() > baseline && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := requestGoroutines(); n > baseline {
		t.Errorf("gateway goroutines = %d; baseline %d\n%s", n, baseline, goroutineDump())
	}
	_ = http.DefaultClient
}
