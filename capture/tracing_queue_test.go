package capture

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// Issue 20: a collector that accepts connections and never answers (the
// worst kind of down) never slows End, and every span it does not get is
// counted: ended = exported + dropped + pending.
func TestSpanQueueCollectorBlackHole(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never read or answered
		}
	}()
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8")
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	t.Setenv("OTEL_BSP_EXPORT_TIMEOUT", "60000")
	tr, err := NewTracing(configs.Tracing{OTLPEndpoint: "http://" + ln.Addr().String(), SampleRatio: 1}, "v")
	if err != nil {
		t.Fatal(err)
	}
	end := func(n int) time.Duration {
		var worst time.Duration
		for i := range n {
			sp := tr.Start("", "chat.completions")
			t0 := time.Now()
			sp.End(&Record{GatewayRequestID: "gw-" + strconv.Itoa(i), Endpoint: "chat.completions", Status: 200, Outcome: OutcomeOK})
			worst = max(worst, time.Since(t0))
		}
		return worst
	}
	end(4)
	// The exporter is now stuck in an export to the black hole.
	select {
	case c := <-accepted:
		held = append(held, c)
	case <-time.After(30 * time.Second):
		t.Fatal("the exporter never connected")
	}
	deadline := time.Now().Add(30 * time.Second)
	for tr.queue.exporting.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	worst := end(1000)
	metrics := func() map[string]int64 {
		var b bytes.Buffer
		tr.WritePrometheus(&b)
		out := map[string]int64{}
		for _, m := range regexp.MustCompile(`(?m)^(cairn_trace_\S+) (\d+)$`).FindAllStringSubmatch(b.String(), -1) {
			out[m[1]], _ = strconv.ParseInt(m[2], 10, 64)
		}
		return out
	}
	m := metrics()
	ended, exported := m["cairn_trace_spans_ended_total"], m["cairn_trace_spans_exported_total"]
	full := m[`cairn_trace_spans_dropped_total{reason="queue_full"}`]
	dropped := full + m[`cairn_trace_spans_dropped_total{reason="export_failed"}`] + m[`cairn_trace_spans_dropped_total{reason="shutdown"}`] + m[`cairn_trace_spans_dropped_total{reason="collector_down"}`]
	pending := m["cairn_trace_spans_pending"]
	if ended != 1004 || ended != exported+dropped+pending {
		t.Errorf("ended %d, exported %d, dropped %d, pending %d: want 1004 = exported + dropped + pending", ended, exported, dropped, pending)
	}
	if full < 1000-8 {
		t.Errorf("dropped for a full queue = %d; want at least %d (queue of 8, exporter stuck)", full, 1000-8)
	}
	// End never waits on the exporter: bounded by a generous margin for a
	// loaded machine, far below the export timeout (60 s) it would wait.
	if worst > time.Second {
		t.Errorf("slowest End took %v while the collector hung", worst)
	}
	// Shutdown within its deadline drops what it cannot send, counted.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = tr.Shutdown(ctx)
	t.Logf("figure: 1000 spans ended against a hung collector: slowest End %v, %d dropped (queue_full)", worst, full)
}

// Issue 20: a collector that refuses connections: after the first failed
// export, spans are not built (collector_down) until the backoff ends, and
// every one is counted.
func TestSpanQueueCollectorRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	t.Setenv("OTEL_BSP_EXPORT_TIMEOUT", "500")
	tr, err := NewTracing(configs.Tracing{OTLPEndpoint: "http://" + addr, SampleRatio: 1}, "v")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	sp := tr.Start("", "chat.completions")
	sp.End(&Record{GatewayRequestID: "gw-0", Endpoint: "chat.completions", Status: 200, Outcome: OutcomeOK})
	deadline := time.Now().Add(30 * time.Second)
	for tr.queue.dropFailed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if tr.queue.shedding() != "collector_down" {
		t.Fatalf("after a refused export: shedding = %q; want collector_down", tr.queue.shedding())
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for range 100 {
		sp := tr.Start(tp, "chat.completions")
		if sp.span != nil || sp.TraceID() != "4bf92f3577b34da6a3ce929d0e0e4736" || !strings.HasSuffix(sp.Traceparent(), "-01") {
			t.Fatalf("span while the collector is down: recording %v, traceparent %s; want the client's trace, sampled, not recorded", sp.span != nil, sp.Traceparent())
		}
		sp.End(&Record{Status: 200})
	}
	if got := tr.queue.dropDown.Load(); got != 100 {
		t.Errorf("dropped while the collector is down = %d; want 100", got)
	}
	if e, x := tr.queue.ended.Load(), tr.queue.dropFailed.Load()+tr.queue.dropDown.Load(); e != 101 || e != x {
		t.Errorf("ended %d; dropped %d; want 101 each", e, x)
	}
}
