package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const bodiesMemConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
providers:
  - { name: mock, base_url: "http://%[4]s/v1", timeout: 30s }
routes:
  - name: chat
    targets: [ { provider: mock, model: gpt-4o-mini } ]
`

// Issue 15: RSS stays within 256 MiB under sustained 1 MB request bodies
// at the rate the machine sustains, by design: the capture queue holds at
// most capture.max_queue_bytes of bodies (64 MiB), the memory ring at most
// capture.memory_bytes (32 MiB), and the process runs under a soft memory
// limit the budgets fit in. It was 1.7–2.2 GB (a 512 MiB queue bound, a
// 256 MiB ring and GC headroom). Every request still yields one record;
// a body capture could not keep is counted, never silently lost.
func TestRSSBoundedUnder1MBBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("sustained 1 MB bodies through the real binary")
	}
	mock := startMockProc(t, "big")
	g := startRelGateway(t, fmt.Sprintf(bodiesMemConfig, "%[1]s", "%[2]s", "%[3]s", mock))
	pid := g.gw.cmd.Process.Pid

	content := strings.Repeat("Please check order 88412093 for jane.doe@example.com; it arrived damaged. ", (1<<20)/75)
	body := []byte(`{"model":"chat","messages":[{"role":"user","content":"` + content + `"}]}`)
	const clients = 48
	dur := 8 * time.Second
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := hc.Post(g.api+"/v1/chat/completions", "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, b))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	hwm := procStatusKiB(t, pid, "VmHWM")
	// Let the writer drain, then check that every request has its record.
	var m []byte
	waitUntil := time.Now().Add(30 * time.Second)
	for {
		m = metrics(t, g.admin)
		if metricValue(t, m, "cairn_capture_queue_depth") == 0 && metricValue(t, m, `cairn_capture_sink_pending{sink="file"}`) == 0 || time.Now().After(waitUntil) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	admitted := metricValue(t, m, "cairn_capture_admitted_total")
	written := metricValue(t, m, `cairn_capture_sink_written_total{sink="file"}`)
	droppedBodies := metricValue(t, m, `cairn_capture_bodies_dropped_total{reason="queue_bytes"}`)
	t.Logf("%d × 1 MB requests in %s from %d clients (%.0f/s), %d failed: VmHWM %.0f MiB; records %0.f admitted, %0.f written, %0.f without bodies (queue_bytes)",
		ok.Load(), dur, clients, float64(ok.Load())/dur.Seconds(), failed.Load(), hwm/1024, admitted, written, droppedBodies)
	if ok.Load() == 0 {
		t.Fatalf("no request succeeded: %v", firstErr.Load())
	}
	if hwm > 256*1024 {
		t.Errorf("VmHWM = %.0f MiB under 1 MB bodies; want ≤ 256 MiB", hwm/1024)
	}
	if admitted != written || admitted < float64(ok.Load()+failed.Load()) {
		t.Errorf("records admitted %.0f, written %.0f, for %d requests; want one per request, all written", admitted, written, ok.Load()+failed.Load())
	}
}
