package capture

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strconv"
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
	dropped := full + m[`cairn_trace_spans_dropped_total{reason="export_failed"}`] + m[`cairn_trace_spans_dropped_total{reason="shutdown"}`]
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
