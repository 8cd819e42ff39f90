package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/loadtest"
)

// Requests still waiting for their upstream's answer at the drain
// deadline (buffered, streams before their headers, streams an enforce
// route holds until judged) are answered 503
// server_shutting_down with a record (outcome shutdown) before capture
// closes: none vanishes with the process, no fallback is tried, and
// Shutdown returns nil (issue 13: before, they were cut by the process
// exit with no answer, no record and no count, and the exit was 1).
func TestShutdownCutsRequestsWaitingOnUpstream(t *testing.T) {
	m, up := startMock(t, loadtest.MockOptions{})
	m.SetFault("upstream-model", loadtest.Fault{Hang: true})
	m.SetFault("slow-model", loadtest.Fault{SlowChunks: time.Minute})
	fb, fbAddr := startMock(t, loadtest.MockOptions{})
	tg := startGateway(t, fmt.Sprintf(`
data_dir: {{DATA}}
server: { drain_timeout: 300ms }
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 30s }
  - { name: backup, base_url: "http://%s/v1", timeout: 30s }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: upstream-model } ]
    fallbacks: [ { provider: backup, model: fallback-model } ]
  - name: strict
    targets: [ { provider: primary, model: slow-model } ]
    fallbacks: [ { provider: backup, model: fallback-model } ]
    contract: { mode: enforce, buffer_streams: true }
`, up, fbAddr), nil)

	// Buffered: plain requests, streams before their headers, and an
	// enforce route's streams held until judged (headers and a first
	// chunk arrived, the rest a minute away).
	const plain, streams, buffered = 4, 2, 2
	const total = plain + streams + buffered
	results := make(chan result, total)
	for i := range total {
		model, extra := "support-bot", ""
		switch {
		case i >= plain+streams:
			model, extra = "strict", `"stream":true,"response_format":{"type":"json_object"}`
		case i >= plain:
			extra = `"stream":true`
		}
		go func() {
			results <- do(t, "POST", tg.api+"/v1/chat/completions", "", chat(model, extra))
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.Requests() < total {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream got %d of %d requests", m.Requests(), total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tg.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v; want nil (every request accounted for)", err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("Shutdown took %v with drain_timeout 300ms; want the waiting requests cut at the deadline", d)
	}
	for range total {
		r := <-results
		if r.status != 503 || r.errorCode() != "server_shutting_down" || !strings.Contains(r.header.Get("content-type"), "json") {
			t.Errorf("request waiting at the drain deadline got %d %s; want 503 server_shutting_down (OpenAI error JSON)", r.status, r.body)
		}
		if r.header.Get("x-request-id") == "" {
			t.Errorf("cut request has no x-request-id")
		}
	}
	if n := fb.Requests(); n != 0 {
		t.Errorf("the fallback got %d requests after the drain deadline; want 0", n)
	}
	recs := tg.records(t, total)
	for _, r := range recs {
		if r.Outcome != capture.OutcomeShutdown || r.Status != 503 || len(r.Attempts) != 1 || r.Attempts[0].Error != "cut at the drain deadline" {
			t.Errorf("record %s: outcome %q status %d attempts %+v; want shutdown, 503, one attempt cut at the drain deadline",
				r.GatewayRequestID, r.Outcome, r.Status, r.Attempts)
		}
	}
	a := tg.capture.Health().Accounting
	if begun := tg.recordsBegun.Load(); begun != int64(a.Admitted) || tg.recordsOpen.Load() != 0 {
		t.Errorf("requests begun %d, open %d, admitted to capture %d; want every begun request admitted", begun, tg.recordsOpen.Load(), a.Admitted)
	}
	if !a.Balanced() || a.Sinks["file"].Written != total || a.Sinks["file"].LostTotal() != 0 {
		t.Errorf("accounting after shutdown = %+v; want %d written, 0 lost", a, total)
	}
}
