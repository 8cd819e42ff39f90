package proxy

import (
	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/internal/jsonscan"
	"github.com/cairnhq/cairn/routing"
	"github.com/cairnhq/cairn/schema"
)

// upstreamReply is an upstream's retryable error answer (429, 5xx), kept so
// that when no fallback answers the client sees it as it would have talking
// to the provider directly (issue 14.3): status, error body, retry hints and
// the provider's request ID. Owned copies; nothing aliases a response.
type upstreamReply struct {
	provider, model string
	target          string // the configured target's label, as in the record
	status          int
	body            []byte // redacted of the provider key
	providerID      string
	retryAfter      string
	retryAfterMS    string
	shouldRetry     string
}

// relayedErrorHeaders are the upstream error headers a client's SDK acts on.
var relayedErrorHeaders = [...]string{"retry-after", "retry-after-ms", "x-should-retry"}

// noteUpstreamReply keeps t's error answer as the exchange's last upstream
// reply. body must already be redacted and owned.
func (x *exchange) noteUpstreamReply(t *routing.Target, model string, status int, h *fasthttp.ResponseHeader, body []byte, providerID string) {
	r := &upstreamReply{provider: t.Provider.Name, model: model, target: t.Label(), status: status, body: body, providerID: providerID}
	r.retryAfter = string(h.Peek("retry-after"))
	r.retryAfterMS = string(h.Peek("retry-after-ms"))
	r.shouldRetry = string(h.Peek("x-should-retry"))
	x.lastReply = r
}

// relayUpstreamError answers with the last upstream's error reply. The
// body is relayed when it is OpenAI's error shape; otherwise the gateway
// writes that shape around the upstream's message. The record names the
// target and its provider request ID at top level.
func (g *Gateway) relayUpstreamError(ctx *fasthttp.RequestCtx, x *exchange, se *StatusError) {
	r := x.lastReply
	h := &ctx.Response.Header
	target := r.provider + "/" + r.model
	h.Set("x-cairn-target", target)
	if r.providerID != "" {
		h.Set("x-cairn-provider-request-id", r.providerID)
	}
	for i, v := range [...]string{r.retryAfter, r.retryAfterMS, r.shouldRetry} {
		if v != "" {
			h.Set(relayedErrorHeaders[i], v)
		}
	}
	ctx.SetStatusCode(r.status)
	ctx.SetContentType("application/json")
	if gjson.GetBytes(r.body, "error.message").Type == gjson.String {
		ctx.Response.SetBody(r.body)
	} else {
		msg := se.Error()
		if m := upstreamMessage(r.body); m != "" {
			msg += ": " + m
		}
		ctx.Response.SetBody(schema.AppendError(nil, msg, se.Type, se.Param, se.Code))
	}
	rec := x.rec
	// The record's target is the one whose answer the client got, like
	// its provider and model (it named the routed target until now).
	rec.Provider, rec.Model, rec.Target = r.provider, r.model, r.target
	rec.ProviderRequestID = r.providerID
	rec.Status = r.status
	rec.Outcome = se.Outcome
	rec.Error = se.Error()
	rec.Raw = &capture.RawBodies{RequestBody: x.body, ResponseBody: r.body}
}

// nameLastAttempt names the target tried last, when no target's answer
// reached the client (transport failures, contract violations), on the
// response (x-cairn-target, x-cairn-provider-request-id) and in the
// record, whose provider, model, target and provider request ID then agree
// (issue 14.3: the provider's ID was only inside the record's attempts).
// The record keeps the cohort it was routed to.
func (x *exchange) nameLastAttempt(h *fasthttp.ResponseHeader) {
	n := len(x.rec.Attempts)
	if n == 0 {
		return
	}
	a := &x.rec.Attempts[n-1]
	setTargetHeader(h, a.Provider, a.Model)
	x.rec.Provider, x.rec.Model, x.rec.ProviderRequestID = a.Provider, a.Model, a.ProviderRequestID
	if a.Target != "" {
		x.rec.Target = a.Target
	}
	if a.ProviderRequestID != "" {
		h.Set("x-cairn-provider-request-id", a.ProviderRequestID)
	}
}

// upstreamMessage finds a human message in a non-OpenAI error body
// ({"error":"…"}, {"message":"…"}, {"detail":"…"}) or plain text, clipped.
func upstreamMessage(body []byte) string {
	var m string
	for _, p := range [...]string{"error", "message", "detail", "error.msg"} {
		if v := gjson.GetBytes(body, p); v.Type == gjson.String {
			m = v.Str
			break
		}
	}
	// jsonscan, not gjson.ValidBytes: the body is the upstream's and
	// gjson's validator recurses once per level, so an error body of
	// millions of '[' overflowed the stack (issue 12.1).
	if m == "" && len(body) > 0 && !jsonscan.Valid(body) {
		m = string(body)
	}
	if len(m) > 300 {
		m = m[:300] + "…"
	}
	return m
}

// bodyRequestID is the provider request ID taken from a response body's
// (or first stream event's) "id" when the provider sent no request-ID
// header, as many OpenAI-compatible servers do (issue 14.4).
func bodyRequestID(body []byte) string {
	v := gjson.GetBytes(body, "id")
	if v.Type != gjson.String {
		return ""
	}
	return eventRequestID(v.Str)
}

// maxBodyRequestID bounds a provider request ID taken from a body: it
// becomes a response header and an indexed record field.
const maxBodyRequestID = 256

// eventRequestID is the provider request ID taken from a stream's first
// event "id", or "" when it is empty or longer than maxBodyRequestID.
func eventRequestID(id string) string {
	if id == "" || len(id) > maxBodyRequestID {
		return ""
	}
	return id
}
