package capture

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// spanQueue is the span processor between the request path and the OTLP
// exporter (issue 20): a bounded queue that a request's End never waits on
// and that counts every span it does not deliver. The SDK's batch span
// processor drops spans silently when its queue is full; this one says so
// on /metrics:
//
//	ended = exported + dropped{queue_full,export_failed,collector_down,shutdown} + pending
//
// After a failed export, spans are not even built for a backoff (1 s,
// doubling to 30 s) and count as dropped (collector_down); then a batch
// goes through as a probe. So a collector that is down costs requests
// neither waiting nor the CPU of building and encoding spans nobody gets.
//
// Sizes follow the standard OTEL_BSP_* environment variables, with the
// SDK's defaults: OTEL_BSP_MAX_QUEUE_SIZE (2048), OTEL_BSP_MAX_EXPORT_BATCH_SIZE
// (512), OTEL_BSP_SCHEDULE_DELAY (5000 ms), OTEL_BSP_EXPORT_TIMEOUT (30000 ms).
// One goroutine exports, one batch at a time: a collector that is down or
// hangs costs at most one export timeout per batch, off the request path,
// while new spans beyond the queue are dropped and counted.
type spanQueue struct {
	exp      sdktrace.SpanExporter
	ch       chan sdktrace.ReadOnlySpan
	batch    int
	delay    time.Duration
	timeout  time.Duration
	flush    chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	ended        atomic.Int64
	exported     atomic.Int64
	dropFull     atomic.Int64
	dropFailed   atomic.Int64
	dropShutdown atomic.Int64
	dropDown     atomic.Int64            // not built while the collector was in backoff
	downUntil    atomic.Int64            // unix nanos: after a failed export, spans are not built until then
	backoff      time.Duration           // run's: doubles per failed export, 1 s to 30 s
	exporting    atomic.Int64            // spans in the export in flight
	leftover     []sdktrace.ReadOnlySpan // run's batch at stop, read by Shutdown after done
	lastErr      atomic.Pointer[string]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func newSpanQueue(exp sdktrace.SpanExporter) *spanQueue {
	size := envInt("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
	q := &spanQueue{
		exp:     exp,
		ch:      make(chan sdktrace.ReadOnlySpan, size),
		batch:   min(envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), size),
		delay:   time.Duration(envInt("OTEL_BSP_SCHEDULE_DELAY", 5000)) * time.Millisecond,
		timeout: time.Duration(envInt("OTEL_BSP_EXPORT_TIMEOUT", 30000)) * time.Millisecond,
		flush:   make(chan chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go q.run()
	return q
}

// shedding reports why a span started now would not be delivered: the
// queue has no room ("queue_full"), or the last export failed and the
// collector is in its backoff ("collector_down"); "" when it would be.
func (q *spanQueue) shedding() string {
	if len(q.ch) == cap(q.ch) {
		return "queue_full"
	}
	if d := q.downUntil.Load(); d != 0 && time.Now().UnixNano() < d {
		return "collector_down"
	}
	return ""
}

// startDropped fills s with a span that is not recorded, because it would
// not be delivered (reason: queue_full or collector_down): the trace
// continues (same trace ID, new span ID, the sampling decision the sampler
// makes) and a sampled span counts as ended and dropped for that reason,
// as if it had been built and refused at End.
func (t *Tracing) startDropped(s *Span, ctx context.Context, parent trace.SpanContext, continued bool, name, reason string) {
	tid := parent.TraceID()
	if !continued {
		tid = newTraceID()
	}
	res := t.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: name, Kind: trace.SpanKindServer})
	var flags trace.TraceFlags
	if res.Decision == sdktrace.RecordAndSample {
		flags = trace.FlagsSampled
		t.queue.ended.Add(1)
		if reason == "queue_full" {
			t.queue.dropFull.Add(1)
		} else {
			t.queue.dropDown.Add(1)
		}
	}
	*s = Span{sc: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: newSpanID(), TraceFlags: flags})}
}

// OnStart does nothing: spans are queued when they end.
func (q *spanQueue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span without blocking; a full queue drops it and
// counts it.
func (q *spanQueue) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	q.ended.Add(1)
	select {
	case <-q.stop:
		q.dropShutdown.Add(1)
		return
	default:
	}
	select {
	case q.ch <- s:
	default:
		q.dropFull.Add(1)
	}
}

func (q *spanQueue) run() {
	defer close(q.done)
	t := time.NewTimer(q.delay)
	defer t.Stop()
	buf := make([]sdktrace.ReadOnlySpan, 0, q.batch)
	for {
		select {
		case s := <-q.ch:
			buf = append(buf, s)
			if len(buf) < q.batch {
				continue
			}
		case <-t.C:
		case ack := <-q.flush:
			buf = q.drain(buf)
			q.export(context.Background(), buf)
			buf = buf[:0]
			close(ack)
			continue
		case <-q.stop:
			// Shutdown exports what is batched and queued (bounded by
			// its context); done orders this write before its read.
			q.leftover = buf
			return
		}
		q.export(context.Background(), buf)
		buf = buf[:0]
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(q.delay)
	}
}

// drain moves what is queued now into buf.
func (q *spanQueue) drain(buf []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	for {
		select {
		case s := <-q.ch:
			buf = append(buf, s)
		default:
			return buf
		}
	}
}

// export sends buf in batches, each within the export timeout (and ctx).
func (q *spanQueue) export(ctx context.Context, buf []sdktrace.ReadOnlySpan) {
	for len(buf) > 0 {
		n := min(len(buf), q.batch)
		q.exporting.Store(int64(n))
		ectx, cancel := context.WithTimeout(ctx, q.timeout)
		err := q.exp.ExportSpans(ectx, buf[:n])
		cancel()
		q.exporting.Store(0)
		if err != nil {
			q.dropFailed.Add(int64(n))
			msg := err.Error()
			q.lastErr.Store(&msg)
			// A collector that refuses or fails: stop building spans
			// for a while (each one costs its attributes and its share
			// of an encoded export), then let a batch through to probe.
			q.backoff = min(max(2*q.backoff, time.Second), 30*time.Second)
			q.downUntil.Store(time.Now().Add(q.backoff).UnixNano())
		} else {
			q.exported.Add(int64(n))
			q.backoff = 0
			q.downUntil.Store(0)
		}
		clear(buf[:n])
		buf = buf[n:]
	}
}

// ForceFlush exports everything queued now.
func (q *spanQueue) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flush <- ack:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops the queue, exports what it holds within ctx (what does
// not fit is counted as dropped at shutdown) and shuts the exporter down.
func (q *spanQueue) Shutdown(ctx context.Context) error {
	q.stopOnce.Do(func() { close(q.stop) })
	var rest []sdktrace.ReadOnlySpan
	select {
	case <-q.done:
		rest = q.leftover
		q.leftover = nil
	case <-ctx.Done():
		// run is stuck in an export: what it holds is counted there
		// (failed when the export gives up).
	}
	rest = q.drain(rest)
	if ctx.Err() == nil && len(rest) > 0 {
		q.export(ctx, rest)
	} else {
		q.dropShutdown.Add(int64(len(rest)))
	}
	return q.exp.Shutdown(ctx)
}

// writePrometheus writes the queue's accounting.
func (q *spanQueue) writePrometheus(w io.Writer) {
	fmt.Fprintf(w, "# HELP cairn_trace_spans_ended_total Sampled spans ended and handed to the OTLP export queue.\n# TYPE cairn_trace_spans_ended_total counter\ncairn_trace_spans_ended_total %d\n", q.ended.Load())
	fmt.Fprintf(w, "# HELP cairn_trace_spans_exported_total Spans the OTLP collector accepted.\n# TYPE cairn_trace_spans_exported_total counter\ncairn_trace_spans_exported_total %d\n", q.exported.Load())
	fmt.Fprintf(w, "# HELP cairn_trace_spans_dropped_total Spans not delivered: the export queue was full (collector slow or hung), the export failed, the collector was in backoff after a failed export (collector_down), or the process stopped first. ended = exported + dropped + pending.\n# TYPE cairn_trace_spans_dropped_total counter\n")
	fmt.Fprintf(w, "cairn_trace_spans_dropped_total{reason=\"queue_full\"} %d\n", q.dropFull.Load())
	fmt.Fprintf(w, "cairn_trace_spans_dropped_total{reason=\"export_failed\"} %d\n", q.dropFailed.Load())
	fmt.Fprintf(w, "cairn_trace_spans_dropped_total{reason=\"collector_down\"} %d\n", q.dropDown.Load())
	fmt.Fprintf(w, "cairn_trace_spans_dropped_total{reason=\"shutdown\"} %d\n", q.dropShutdown.Load())
	fmt.Fprintf(w, "# HELP cairn_trace_spans_pending Spans queued or being exported now.\n# TYPE cairn_trace_spans_pending gauge\ncairn_trace_spans_pending %d\n", int64(len(q.ch))+q.exporting.Load())
	fmt.Fprintf(w, "# HELP cairn_trace_queue_capacity Spans the export queue holds at most (OTEL_BSP_MAX_QUEUE_SIZE).\n# TYPE cairn_trace_queue_capacity gauge\ncairn_trace_queue_capacity %d\n", cap(q.ch))
}

// WritePrometheus writes the span export accounting (nothing without an
// OTLP endpoint). Safe for concurrent use.
func (t *Tracing) WritePrometheus(w io.Writer) {
	if t == nil || t.queue == nil {
		return
	}
	t.queue.writePrometheus(w)
}
