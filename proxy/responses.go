package proxy

import (
	"fmt"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/routing"
	"github.com/cairnhq/cairn/schema"
)

// The Responses API (POST /v1/responses) goes through the same path as
// chat completions: admit (ParseResponsesRequest), forward, attempt and
// the stream relay, with these differences, all in this file:
//   - the route's prompt is prepended to "instructions" (RewriteResponses);
//   - the answer is read as output items (text, function calls) into a
//     StreamAccumulator in Responses mode, which the contract, the refusal
//     verdict and the record use as for a chat stream;
//   - every response's placement (route, provider, upstream model, cohort)
//     is kept (respStore), and a request continuing it
//     (previous_response_id) or addressing it (/v1/responses/{id}) goes to
//     that target only.

// rewrite builds the upstream body for the exchange's endpoint.
func (x *exchange) rewrite(dst []byte, model, system string, forceUsage bool) ([]byte, error) {
	if x.ep == epResponses {
		// Responses always report usage in response.completed.
		return x.req.RewriteResponses(dst, x.body, model, system)
	}
	return x.req.Rewrite(dst, x.body, model, system, forceUsage)
}

// appendStreamError frames the terminal error event of a stream that
// failed after its first byte: a typed "error" event on a Responses
// stream, OpenAI's data: {"error":…} on the others.
func appendStreamError(ep endpoint, message, typ, code string) []byte {
	if ep == epResponses {
		return schema.AppendResponsesSSEError(nil, message, typ, code)
	}
	return schema.AppendSSEError(nil, message, typ, code)
}

// responseAccs recycles the accumulators non-streamed Responses bodies are
// read into; nothing keeps one after the attempt returns.
var responseAccs = sync.Pool{New: func() any { return new(schema.StreamAccumulator) }}

func readResponseBody(raw []byte) *schema.StreamAccumulator {
	a := responseAccs.Get().(*schema.StreamAccumulator)
	a.ForResponses()
	a.AddResponseBody(raw)
	return a
}

func releaseResponseAcc(a *schema.StreamAccumulator) {
	a.Reset()
	responseAccs.Put(a)
}

// noteResponseReply finishes a non-streamed Responses answer: its
// placement is kept, and the record carries the answer as a stream's
// (output text, function calls, finish reason), which the masker, the
// leak detectors and the refusal verdict read.
func (g *Gateway) noteResponseReply(x *exchange, t *routing.Target, model, id string, a *schema.StreamAccumulator) {
	g.rememberResponse(x, t, model, id)
	raw := x.rec.Raw
	raw.ResponseBody = nil
	raw.StreamContent = a.Content()
	raw.StreamToolCalls = toolCallsJSON(a.ToolCalls())
	raw.FinishReason = a.FinishReason()
	if raw.FinishReason == "" {
		raw.FinishReason = "unknown"
	}
	if e := a.Err(); e != nil {
		raw.ResponseBody = append([]byte(nil), e...)
	}
	if x.route != nil && a.Err() == nil {
		x.rec.Refusal = g.refusals(x).Stream(a)
	}
}

// rememberResponse keeps where response id lives. A failed Redis write is
// counted (cairn_responses_state_write_errors_total) and logged; this
// replica still knows the placement.
func (g *Gateway) rememberResponse(x *exchange, t *routing.Target, model, id string) {
	if id == "" || !schema.ValidResponseID(id) || x.route == nil || !x.req.Stored() {
		return // "store": false: nothing at the provider to come back to
	}
	if t.Provider.Kind == configs.KindAnthropic {
		return // Anthropic keeps nothing: its responses cannot be continued or fetched
	}
	p := respPin{Route: x.route.Name, Provider: t.Provider.Name, Model: model, Cohort: t.Cohort}
	if err := g.respState.put(g.baseCtx, id, p); err != nil {
		g.log.Warn("response placement not shared", "request_id", x.id, "err", err)
	}
}

// errResponseNotFound is OpenAI's answer for an unknown response ID.
func errResponseNotFound(id, param string) *StatusError {
	se := statusErr(fasthttp.StatusNotFound, "invalid_request_error", "", capture.OutcomeNotFound,
		fmt.Sprintf("Response with id '%s' not found.", id))
	if param != "" {
		se.Err = fmt.Errorf("Previous response with id '%s' not found.", id)
		se.Code = "previous_response_not_found"
	}
	se.Param = param
	return se
}

var errResponseStateDown = statusErr(fasthttp.StatusServiceUnavailable, "server_error", "state_unavailable", capture.OutcomeUpstreamError,
	"the gateway cannot reach the store of response placements; retry shortly")

// pinPrevious pins a request with previous_response_id to the target that
// created that response. The response must belong to the requested route
// (a key allowed one route must not continue another's conversations).
func (g *Gateway) pinPrevious(x *exchange, tbl *routing.Table) *StatusError {
	id := x.req.PreviousResponseID()
	if id == "" {
		return nil
	}
	p, ok, err := g.respState.get(g.baseCtx, id)
	if err != nil {
		return errResponseStateDown
	}
	if !ok || p.Route != x.route.Name {
		return errResponseNotFound(id, "previous_response_id")
	}
	t := g.pinnedTarget(x.route, p)
	if t == nil {
		return errResponseNotFound(id, "previous_response_id")
	}
	x.pinned = t
	return nil
}

// pinnedTarget finds the route's target (or fallback) for p, or makes one
// when a reload removed it but its provider is still configured: the
// state is at the provider whatever the route says now.
func (g *Gateway) pinnedTarget(r *routing.Route, p respPin) *routing.Target {
	var passThrough *routing.Target
	for _, ts := range [2][]*routing.Target{r.Targets, r.Fallbacks} {
		for _, t := range ts {
			switch {
			case t.Provider.Name != p.Provider:
			case t.Model == p.Model:
				return t
			case t.Model == "" && passThrough == nil:
				passThrough = t // sends the route name, which created it
			}
		}
	}
	if passThrough != nil {
		return passThrough
	}
	cfg := g.live.Load().Config()
	for i := range cfg.Providers {
		if cfg.Providers[i].Name == p.Provider {
			return &routing.Target{Provider: &cfg.Providers[i], Model: p.Model, Cohort: p.Cohort, Health: g.breakers.Health(p.Provider, p.Model)}
		}
	}
	return nil
}

// serveResponseByID serves GET|DELETE /v1/responses/{id},
// POST /v1/responses/{id}/cancel and GET /v1/responses/{id}/input_items at
// the provider and model that created the response. rest is the path after
// "/responses/".
func (g *Gateway) serveResponseByID(ctx *fasthttp.RequestCtx, rest string) {
	x := g.begin(ctx, epResponses)
	defer g.finish(x)
	id, sub, _ := strings.Cut(rest, "/")
	method := string(ctx.Method())
	switch {
	case !schema.ValidResponseID(id):
		g.fail(ctx, x, errNotFound)
		return
	case sub == "" && (method == fasthttp.MethodGet || method == fasthttp.MethodDelete),
		sub == "cancel" && method == fasthttp.MethodPost,
		sub == "input_items" && method == fasthttp.MethodGet:
	case sub == "" || sub == "cancel" || sub == "input_items":
		g.fail(ctx, x, errMethod)
		return
	default:
		g.fail(ctx, x, errNotFound)
		return
	}
	if g.stopping.Load() {
		ctx.SetConnectionClose()
		g.fail(ctx, x, errShuttingDown)
		return
	}
	select {
	case g.sem <- struct{}{}:
		x.slot = true
	default:
		ctx.Response.Header.Set("retry-after", "1")
		g.fail(ctx, x, errOverloaded)
		return
	}
	tbl, key, se := g.keyed(ctx, x)
	if se != nil {
		g.fail(ctx, x, se)
		return
	}
	p, ok, err := g.respState.get(g.baseCtx, id)
	if err != nil {
		g.fail(ctx, x, errResponseStateDown)
		return
	}
	if ok {
		x.route = tbl.Route(p.Route)
	}
	if !ok || x.route == nil || key != nil && !key.Allows(p.Route) {
		x.route = nil
		g.fail(ctx, x, errResponseNotFound(id, ""))
		return
	}
	x.rec.Route = x.route.Name
	t := g.pinnedTarget(x.route, p)
	up := (*g.upstreams.Load())[p.Provider]
	if t == nil || up == nil {
		g.fail(ctx, x, errResponseNotFound(id, ""))
		return
	}
	x.rec.Cohort = t.Cohort
	path := make([]byte, 0, 64)
	path = append(append(path, "/responses/"...), id...)
	if sub != "" {
		path = append(append(path, '/'), sub...)
	}
	if q := ctx.URI().QueryString(); len(q) > 0 {
		path = append(append(path, '?'), q...)
	}
	var body []byte
	if method == fasthttp.MethodPost {
		body = ctx.PostBody()
	}
	att := capture.Attempt{Provider: p.Provider, Model: p.Model, Target: t.Label(), Cohort: t.Cohort}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	up.prepare(req, string(path), body, x.tp, false)
	req.Header.SetMethod(method)
	t0 := g.now()
	err = up.buffered.DoTimeout(req, resp, up.cfg.Timeout.D())
	att.LatencyMS = msSince(t0, g.now())
	if err != nil {
		_, se, _ := g.upstreamFailed(x, t, att, err)
		g.fail(ctx, x, se)
		return
	}
	up.noteKeepAlive(resp)
	status := resp.StatusCode()
	att.Status = status
	att.ProviderRequestID = providerRequestID(&resp.Header)
	raw := up.redact(append([]byte(nil), resp.Body()...))
	if att.ProviderRequestID == "" && status < 300 && sub != "input_items" {
		r := schema.ReadReply(raw)
		att.ProviderRequestID = r.ID(raw)
	}
	x.rec.Attempts = append(x.rec.Attempts, att)
	g.commitTarget(ctx, x, t, p.Model, att.ProviderRequestID)
	if status == fasthttp.StatusOK && method == fasthttp.MethodDelete {
		g.respState.forget(g.baseCtx, id)
	}
	ctx.SetStatusCode(status)
	copyResponseHeaders(&ctx.Response.Header, &resp.Header)
	ctx.Response.SetBodyRaw(raw)
	ctx.Response.Header.Set("x-cairn-contract", capture.VerdictNone)
	x.rec.Status = status
	x.setRaw(capture.RawBodies{ResponseBody: raw})
	switch {
	case status >= 500:
		x.rec.Outcome = capture.OutcomeUpstreamError
		x.rec.Error = fmt.Sprintf("upstream %s answered %d", p.Provider, status)
	case status >= 400:
		x.rec.Outcome = capture.OutcomeUpstream4xx
		x.rec.Error = fmt.Sprintf("upstream %s answered %d", p.Provider, status)
	}
}
