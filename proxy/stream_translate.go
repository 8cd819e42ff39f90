package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/routing"
	"github.com/cairnhq/cairn/schema"
	"github.com/cairnhq/cairn/schema/anthropic"
)

// translateFrom sets s up to translate the provider's events when its
// kind does not speak chat.completion.chunk (issue 19). Usage is always
// asked for: the gateway charges it, and onEvent strips the usage chunk
// when the client did not ask.
func (s *streamRelay) translateFrom(up *upstream, created int64) {
	if up.cfg.Kind != configs.KindAnthropic {
		return
	}
	if s.x.ep == epResponses {
		s.translateResponsesFrom(created)
		return
	}
	s.tr = &anthropic.Stream{}
	s.tr.Reset(created, true)
	emit := s.onEvent
	tr := s.tr
	s.trFeed = func(ev schema.Event) error {
		if ev.Done {
			return nil // the stream's end is message_stop, not [DONE]
		}
		return tr.Event(ev.Data, emit)
	}
}

// feed returns the parser's callback: onEvent, or the translator in front
// of it.
func (s *streamRelay) feed() func(schema.Event) error {
	if s.trFeed != nil {
		return s.trFeed
	}
	return s.onEvent
}

// translateStreamRaw translates a stream request's whole (non-SSE)
// answer, an error as a rule.
func (u *upstream) translateStreamRaw(ep endpoint, raw []byte, status int, created int64) ([]byte, int, error) {
	out, st, ok := u.translateRaw(ep, raw, status, created)
	if !ok {
		return nil, status, errNotMessage
	}
	return out, st, nil
}

// untranslatable answers a request the target's provider kind cannot
// express: a 400 naming the parameter, recorded as the target's attempt.
func (g *Gateway) untranslatable(ctx *fasthttp.RequestCtx, x *exchange, t *routing.Target, att capture.Attempt, se *StatusError) (attemptResult, *StatusError, schema.Verdict) {
	att.Status = se.Status
	att.Error = se.Error()
	x.rec.Attempts = append(x.rec.Attempts, att)
	g.commitTarget(ctx, x, t, att.Model, "")
	ctx.Response.Header.Set("x-cairn-contract", capture.VerdictNone)
	g.fail(ctx, x, se)
	return resultDone, nil, schema.Verdict{}
}

// noteContentFilter records a provider's content-filter refusal of the
// request (Azure: 400, code content_filter) as a refusal, for the refusal
// signal, not as an upstream error: the provider worked as configured.
func noteContentFilter(x *exchange, status int, raw []byte) {
	if status != fasthttp.StatusBadRequest || !contentFiltered(raw) {
		return
	}
	x.rec.Refusal = true
	x.rec.Outcome = ""
	x.rec.Error = ""
}
