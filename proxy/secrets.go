package proxy

import (
	"context"
	"encoding"
	"fmt"
	"log/slog"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
)

// Issue 12.4: Cairn knows its own secrets (capture.SecretsOf) and replaces
// every occurrence of them in what it sends and writes. This file holds
// the proxy's part: client responses (bodies and headers), admin answers
// and log lines. SSE events are scrubbed one by one in streamRelay.onEvent;
// records, and so incidents, Redis and metrics, by the capture writer.

// Logger returns the gateway's logger: the one it was given, with the
// gateway's secrets replaced in every message and attribute.
func (g *Gateway) Logger() *slog.Logger { return g.log }

// scrubText masks personal data and replaces secrets in free text that an
// operator or a client supplied and that is stored, logged or exported
// outside a capture record (incident reasons, span attributes).
func (g *Gateway) scrubText(s string) string {
	return g.secrets.String(g.masker.String(s))
}

// scrubResponse replaces secrets in a finished response's headers and, for
// a buffered body, the body. A streamed body is scrubbed event by event.
// With no secret in them it costs one scan and no allocation.
func (g *Gateway) scrubResponse(resp *fasthttp.Response) {
	s := g.secrets.Secrets()
	if s.Len() == 0 {
		return
	}
	scrubHeaders(s, &resp.Header)
	if resp.IsBodyStream() {
		return
	}
	if b := resp.Body(); s.Contains(b) {
		resp.SetBody(s.Redact(b))
	}
}

// scrubHeaders replaces secrets in header values (an upstream that echoes
// the key in its request ID, a client model name that holds one).
func scrubHeaders(s *capture.Secrets, h *fasthttp.ResponseHeader) {
	var dirty [][2]string
	for k, v := range h.All() {
		if s.Contains(v) {
			dirty = append(dirty, [2]string{string(k), string(s.Redact(v))})
		}
	}
	for _, kv := range dirty {
		h.Set(kv[0], kv[1])
	}
}

// redactingHandler is a slog.Handler that replaces the gateway's secrets in
// the message and every attribute before the wrapped handler sees them.
type redactingHandler struct {
	h slog.Handler
	r *capture.Redactor
}

func newRedactingLogger(l *slog.Logger, r *capture.Redactor) *slog.Logger {
	return slog.New(redactingHandler{h: l.Handler(), r: r})
}

func (h redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.h.Enabled(ctx, l)
}

func (h redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	s := h.r.Secrets()
	if s.Len() == 0 {
		return h.h.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, s.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(s, a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	s := h.r.Secrets()
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = redactAttr(s, a)
	}
	return redactingHandler{h: h.h.WithAttrs(clean), r: h.r}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{h: h.h.WithGroup(name), r: h.r}
}

// redactAttr resolves a (errors, Stringers and LogValuers become their
// text) and replaces secrets in its value.
func redactAttr(s *capture.Secrets, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, s.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = redactAttr(s, ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if s.Len() > 0 {
			if str := anyText(v.Any()); s.ContainsString(str) {
				return slog.String(a.Key, s.String(str))
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// anyText renders a value as slog's handlers would print it.
func anyText(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case error:
		return x.Error()
	case encoding.TextMarshaler:
		if b, err := x.MarshalText(); err == nil {
			return string(b)
		}
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprintf("%+v", v)
}
