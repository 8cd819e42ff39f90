package capture

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/cairnhq/cairn/configs"
)

// Tracing creates one span per request. With an OTLP endpoint configured,
// spans go through a bounded export queue (spanQueue) to an OTLP/HTTP exporter, sampled
// by configs.Tracing.SampleRatio (parent-based: a sampled incoming
// traceparent is honoured). Without one, nothing is recorded or exported,
// but trace and span IDs are still generated (or continued from the
// client's traceparent) so that records carry a trace_id and the upstream
// gets a traceparent; that path costs a few random numbers and one small
// allocation.
//
// A Tracing is safe for concurrent use. A nil *Tracing behaves like one
// without an endpoint.
type Tracing struct {
	provider *sdktrace.TracerProvider // nil without an endpoint
	queue    *spanQueue               // nil without an endpoint
	sampler  sdktrace.Sampler         // the provider's, for spans not built (startDropped)
	tracer   trace.Tracer
	// scrub masks the client- and provider-supplied strings a span
	// carries (model names, the provider's request ID) (issue 12.14).
	scrub func(string) string
}

// SetScrub sets the function that masks client- and provider-supplied
// span attributes before export; by default the built-in detectors.
// Call it before the first Start.
func (t *Tracing) SetScrub(fn func(string) string) {
	if t != nil && fn != nil {
		t.scrub = fn
	}
}

// NewTracing sets up tracing from cfg. OTLPEndpoint is either a URL
// (http://collector:4318, https://…; a path other than / replaces
// /v1/traces) or host:port, which means plain HTTP as an OpenTelemetry
// Collector listens by default. The exporter also honours the standard
// OTEL_EXPORTER_OTLP_* environment variables (headers, timeout).
func NewTracing(cfg configs.Tracing, serviceVersion string) (*Tracing, error) {
	if cfg.OTLPEndpoint == "" {
		return &Tracing{}, nil
	}
	var opts []otlptracehttp.Option
	if strings.Contains(cfg.OTLPEndpoint, "://") {
		u, err := url.Parse(cfg.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("tracing.otlp_endpoint: not an http(s) URL or host:port")
		}
		opts = append(opts, otlptracehttp.WithEndpoint(u.Host))
		if u.Scheme == "http" {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if u.Path != "" && u.Path != "/" {
			opts = append(opts, otlptracehttp.WithURLPath(u.Path))
		}
	} else {
		opts = append(opts, otlptracehttp.WithEndpoint(cfg.OTLPEndpoint), otlptracehttp.WithInsecure())
	}
	// New does not dial: export errors surface later through the OTel
	// error handler, never on the request path.
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	ratio := cfg.SampleRatio
	if ratio <= 0 || ratio > 1 {
		ratio = 1
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "cairn"),
		attribute.String("service.version", serviceVersion),
	)
	// The bounded queue, not the SDK's batcher: it counts what it drops
	// (issue 20: a collector that is down never slows a request, and no
	// span is lost silently).
	q := newSpanQueue(exp)
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(q),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
	)
	return &Tracing{provider: tp, queue: q, sampler: sampler, tracer: tp.Tracer("github.com/cairnhq/cairn/capture"), scrub: NewMasker(configs.Masking{}).String}, nil
}

// Span is one request's span. Its methods are safe on a nil *Span. A Span
// belongs to the request that started it: End it once, from one goroutine.
type Span struct {
	sc    trace.SpanContext
	span  trace.Span // nil without an exporter
	scrub func(string) string
}

// Start starts the span of one request, continuing the W3C traceparent
// header value when it is valid and starting a new trace otherwise. name is
// the span name (e.g. "chat.completions").
func (t *Tracing) Start(traceparent string, name string) *Span {
	s := new(Span)
	t.StartInto(s, traceparent, name)
	return s
}

// TraceID returns the span's trace ID as 32 hex digits.
func (s *Span) TraceID() string {
	if s == nil {
		return ""
	}
	return s.sc.TraceID().String()
}

// Traceparent returns the W3C traceparent to send upstream: the same trace,
// with this span as the parent.
func (s *Span) Traceparent() string {
	if s == nil {
		return ""
	}
	var b [55]byte
	copy(b[:], "00-")
	tid, sid := s.sc.TraceID(), s.sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(s.sc.TraceFlags())})
	return string(b[:])
}

// End sets the GenAI semantic-convention and Cairn attributes from r and
// ends the span; a failed request (5xx, upstream error, timeout, contract
// failure) gets error status. It reads only metadata from r (never bodies
// or error text) and masks the client- and provider-supplied strings
// among them, so it may be called before r is masked; it does not retain r.
func (s *Span) End(r *Record) {
	if s == nil || s.span == nil {
		return
	}
	if r != nil && s.span.IsRecording() {
		op := r.Endpoint
		switch r.Endpoint {
		case "chat.completions", "responses":
			op = "chat"
		case "embeddings":
			op = "embeddings"
		}
		attrs := []attribute.KeyValue{
			attribute.String("gen_ai.operation.name", op),
			attribute.Int("http.response.status_code", r.Status),
			attribute.String("cairn.gateway_request_id", r.GatewayRequestID),
			attribute.String("cairn.outcome", r.Outcome),
		}
		if s.scrub == nil {
			s.scrub = PlaceholderMaskingFailedFunc
		}
		str := func(k, v string) {
			if v != "" {
				attrs = append(attrs, attribute.String(k, v))
			}
		}
		str("gen_ai.provider.name", r.Provider)
		// The requested model is the client's string, a passed-through
		// model and the response ID the provider's: End runs before the
		// writer masks r, so they are masked here.
		str("gen_ai.request.model", s.scrub(r.RequestedModel))
		str("gen_ai.response.model", s.scrub(r.Model))
		str("gen_ai.response.id", s.scrub(r.ProviderRequestID))
		str("cairn.route", r.Route)
		str("cairn.cohort", r.Cohort)
		str("cairn.contract.verdict", r.Contract.Verdict)
		str("cairn.prompt_version", r.PromptVersion)
		if r.Usage.PromptTokens > 0 || r.Usage.CompletionTokens > 0 {
			attrs = append(attrs,
				attribute.Int("gen_ai.usage.input_tokens", r.Usage.PromptTokens),
				attribute.Int("gen_ai.usage.output_tokens", r.Usage.CompletionTokens))
		}
		if r.Params.Temperature != nil {
			attrs = append(attrs, attribute.Float64("gen_ai.request.temperature", *r.Params.Temperature))
		}
		if r.Params.MaxTokens > 0 {
			attrs = append(attrs, attribute.Int("gen_ai.request.max_tokens", r.Params.MaxTokens))
		}
		if r.Raw != nil && r.Raw.FinishReason != "" {
			attrs = append(attrs, attribute.StringSlice("gen_ai.response.finish_reasons", []string{r.Raw.FinishReason}))
		}
		if r.Params.Stream {
			attrs = append(attrs, attribute.Bool("cairn.stream", true))
		}
		if len(r.Attempts) > 1 {
			attrs = append(attrs, attribute.Int("cairn.attempts", len(r.Attempts)))
		}
		s.span.SetAttributes(attrs...)
		if r.Status >= 500 || r.Failed() {
			s.span.SetAttributes(attribute.String("error.type", r.Outcome))
			s.span.SetStatus(codes.Error, r.Outcome)
		}
	}
	s.span.End()
}

// PlaceholderMaskingFailedFunc stands in for a missing scrub function:
// it never lets a value through.
func PlaceholderMaskingFailedFunc(v string) string {
	if v == "" {
		return ""
	}
	return PlaceholderMaskingFailed
}

// Shutdown flushes pending spans and stops the exporter, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing shutdown: %w", err)
	}
	return nil
}

// parseTraceparent parses a W3C traceparent header value (version 00, or a
// later version read as 00 as the spec asks).
func parseTraceparent(v string) (trace.SpanContext, bool) {
	v = strings.TrimSpace(v)
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return trace.SpanContext{}, false
	}
	ver, err := hex.DecodeString(v[:2])
	if err != nil || ver[0] == 0xff || (ver[0] == 0 && len(v) != 55) || strings.ToLower(v) != v {
		return trace.SpanContext{}, false
	}
	tid, err1 := trace.TraceIDFromHex(v[3:35])
	sid, err2 := trace.SpanIDFromHex(v[36:52])
	fl, err3 := hex.DecodeString(v[53:55])
	if err1 != nil || err2 != nil || err3 != nil {
		return trace.SpanContext{}, false
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(fl[0]) & trace.FlagsSampled, Remote: true,
	})
	return sc, sc.IsValid()
}

func newTraceID() trace.TraceID {
	var t trace.TraceID
	for !t.IsValid() {
		a, b := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			t[i], t[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
		}
	}
	return t
}

func newSpanID() trace.SpanID {
	var s trace.SpanID
	for !s.IsValid() {
		a := rand.Uint64()
		for i := range 8 {
			s[i] = byte(a >> (8 * i))
		}
	}
	return s
}
