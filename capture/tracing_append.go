package capture

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel/trace"
)

// StartInto is Start writing the span into s instead of allocating one, so
// that a caller can keep the span inside its own per-request struct (issue
// 15). s must not be in use; it is overwritten.
func (t *Tracing) StartInto(s *Span, traceparent string, name string) {
	parent, ok := parseTraceparent(traceparent)
	if t == nil || t.provider == nil {
		var tid trace.TraceID
		var flags trace.TraceFlags
		if ok {
			tid, flags = parent.TraceID(), parent.TraceFlags()
		} else {
			tid = newTraceID()
		}
		*s = Span{sc: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: newSpanID(), TraceFlags: flags})}
		return
	}
	ctx := context.Background()
	if ok {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	if t.queue != nil {
		if why := t.queue.shedding(); why != "" {
			// Issue 20: the collector is down or slow, so this span
			// would be dropped: don't build it. The request keeps its
			// trace ID and the upstream a traceparent; the span is
			// counted as dropped.
			t.startDropped(s, ctx, parent, ok, name, why)
			return
		}
	}
	_, sp := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	*s = Span{sc: sp.SpanContext(), span: sp, scrub: t.scrub}
}

// AppendTraceID appends TraceID's 32 hex digits to dst (nothing for a nil
// span).
func (s *Span) AppendTraceID(dst []byte) []byte {
	if s == nil {
		return dst
	}
	tid := s.sc.TraceID()
	return hex.AppendEncode(dst, tid[:])
}

// AppendTraceparent appends Traceparent's value to dst (nothing for a nil
// span).
func (s *Span) AppendTraceparent(dst []byte) []byte {
	if s == nil {
		return dst
	}
	tid, sid := s.sc.TraceID(), s.sc.SpanID()
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, tid[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, sid[:])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, []byte{byte(s.sc.TraceFlags())})
}
