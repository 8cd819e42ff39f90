package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGTERM while requests wait on a slow provider (60 s to answer,
// drain_timeout 1s): at the deadline each is answered 503
// server_shutting_down and recorded (outcome shutdown), and the process
// exits 0 within the drain. Before, they were cut by the exit with no
// answer and no record, nothing counted them, and the exit was 1 after the
// 5 s grace.
func TestEvidenceSIGTERMCutsRequestsWaitingOnUpstream(t *testing.T) {
	mock := startMockProc(t, "slow", "--latency", "60s")
	g := startRelGateway(t, strings.ReplaceAll(longStreamConfig, "%[4]s", mock))
	const n = 8
	replies := make(chan reply, n)
	for i := range n {
		extra := ""
		if i%2 == 1 {
			extra = `"stream":true`
		}
		go func() { replies <- postChat(g.api, "", chatBody("support-bot", extra)) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, metrics(t, g.admin), "cairn_capture_records_open") < n {
		if time.Now().After(deadline) {
			t.Fatalf("the %d requests never reached the gateway", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t0 := time.Now()
	g.gw.cmd.Process.Signal(syscall.SIGTERM)
	exitErr := g.gw.wait()
	took := time.Since(t0)
	if exitErr != nil {
		t.Errorf("exit after SIGTERM: %v; want 0\n%s", exitErr, g.gw.out)
	}
	var ids []string
	for range n {
		r := <-replies
		if r.status != 503 || !strings.Contains(string(r.body), `"code":"server_shutting_down"`) {
			t.Errorf("request waiting at the drain deadline: %d %s (err %v); want 503 server_shutting_down", r.status, r.body, r.err)
		}
		ids = append(ids, r.id)
	}
	got, torn := diskRecords(t, g.dataDir)
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("request %q has %d records; want 1", id, got[id])
		}
	}
	if torn != 0 || len(got) != n {
		t.Errorf("%d records (%d torn) for %d requests", len(got), torn, n)
	}
	if took > 3*time.Second {
		t.Errorf("exit took %v after SIGTERM with drain_timeout 1s", took)
	}
	t.Logf("figure: SIGTERM with %d requests waiting on a 60 s provider, drain_timeout 1s: %d answered 503 server_shutting_down, %d/%d records on disk, exit 0 after %v",
		n, n, len(got), n, took.Round(time.Millisecond))
}
