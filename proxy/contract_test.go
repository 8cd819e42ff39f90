package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/loadtest"
)

func TestEmbeddings(t *testing.T) {
	m1, _, tg := twoMocks(t)
	r := do(t, "POST", tg.api+"/v1/embeddings", "gw-app-key", `{"model":"support-bot","input":"hello"}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"embedding"`) {
		t.Fatalf("embeddings = %d %s", r.status, r.body)
	}
	_, body := m1.LastRequest()
	if !strings.Contains(string(body), `"model":"upstream-model"`) || strings.Contains(string(body), "system") {
		t.Errorf("upstream embeddings body = %s; want only the model rewritten", body)
	}
	if rec := tg.records(t, 1)[0]; rec.Endpoint != "embeddings" || rec.Usage.PromptTokens == 0 {
		t.Errorf("record endpoint %q usage %+v", rec.Endpoint, rec.Usage)
	}
}

const bufferedConfig = `
data_dir: {{DATA}}
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 2s }
  - { name: canary, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: support-bot
    targets:
      - { provider: canary, model: canary-model }
    fallbacks:
      - { provider: primary, model: stable-model }
    contract: { mode: enforce, buffer_streams: true }
detection: { disabled: true }
`

func TestBufferedStreamEnforce(t *testing.T) {
	_, a1 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "p1"})
	m2, a2 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "p2"})
	m2.SetFault("*", loadtest.Fault{BrokenJSON: true})
	tg := startGateway(t, fmt.Sprintf(bufferedConfig, a1, a2), nil)
	r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", `"stream":true,"response_format":{"type":"json_object"}`))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := r.header.Get("x-cairn-target"); got != "primary/stable-model" {
		t.Errorf("target = %q; a held stream that broke its contract must be replaced by the fallback's", got)
	}
	events, done := readSSE(t, r)
	if !done || len(events) == 0 {
		t.Fatalf("events %d done %v", len(events), done)
	}
	if strings.Contains(string(r.body), "Sure!") {
		t.Errorf("the client saw the canary's broken stream: %s", r.body)
	}
	rec := tg.records(t, 1)[0]
	if rec.Contract.Verdict != "pass" || len(rec.Attempts) != 2 || rec.Attempts[0].Contract != "fail" {
		t.Errorf("record contract %+v attempts %+v", rec.Contract, rec.Attempts)
	}
}
