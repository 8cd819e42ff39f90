package proxy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/routing"
	"github.com/cairnhq/cairn/schema"
)

// attempt sends the request to one target. On resultRetry it returns the
// error the client would get if no later target succeeds.
func (g *Gateway) attempt(ctx *fasthttp.RequestCtx, x *exchange, t *routing.Target) (attemptResult, *StatusError, schema.Verdict) {
	ups := *g.upstreams.Load()
	up := ups[t.Provider.Name]
	model := t.UpstreamModel(x.req.Model)
	att := capture.Attempt{Provider: t.Provider.Name, Model: model, Target: t.Label(), Cohort: t.Cohort}
	x.lastReply, x.replyRead = nil, false
	if up == nil {
		att.Error = "provider not configured"
		x.rec.Attempts = append(x.rec.Attempts, att)
		return resultRetry, statusErr(fasthttp.StatusBadGateway, "server_error", "upstream_error", capture.OutcomeUpstreamError, "provider not configured"), schema.Verdict{}
	}
	var rewriteModel, system string
	if um := up.upstreamModel(model); um != x.req.Model {
		rewriteModel = um // the target's model (Azure: its deployment)
	}
	if x.ep == epChat || x.ep == epResponses {
		system = x.route.Config.Prompt.System
	}
	stream := (x.ep == epChat || x.ep == epCompletions || x.ep == epResponses) && x.req.Stream
	// The upstream body is done with when DoTimeout returns (a stream's
	// too: the request is written before its response headers are read):
	// pooled.
	bp := rewriteBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledRewrite {
			*bp = (*bp)[:0]
			rewriteBufs.Put(bp)
		}
	}()
	body, err := x.rewrite((*bp)[:0], rewriteModel, system, stream && !x.req.IncludeUsage)
	*bp = body
	if err != nil {
		return resultDone, nil, schema.Verdict{}
	}
	body, se := up.translateRequest(x.ep, body, model)
	if se != nil {
		return g.untranslatable(ctx, x, t, att, se)
	}
	if stream {
		return g.attemptStream(ctx, x, t, up, body, att, g.now())
	}
	t0 := g.now()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	up.prepare(req, up.path(x.ep, model), body, x.tp, false)
	err = up.buffered.DoTimeout(req, resp, up.cfg.Timeout.D())
	att.LatencyMS = msSince(t0, g.now())
	if err != nil {
		return g.upstreamFailed(x, t, att, err)
	}
	up.noteKeepAlive(resp)
	if !up.translateResponse(x.ep, resp, g.now().Unix()) {
		return g.upstreamFailed(x, t, att, errNotMessage)
	}
	status := resp.StatusCode()
	att.Status = status
	att.ProviderRequestID = providerRequestID(&resp.Header)
	if status >= 500 || status == fasthttp.StatusTooManyRequests {
		x.discard(&att, resp.Body())
	}
	if se := g.upstreamStatus(x, t, &att, status); se != nil {
		if status >= 500 || status == fasthttp.StatusTooManyRequests {
			x.respRaw = up.redact(append([]byte(nil), resp.Body()...))
			x.noteUpstreamReply(t, model, status, &resp.Header, x.respRaw, att.ProviderRequestID)
			return resultRetry, se, schema.Verdict{}
		}
	}
	raw := append([]byte(nil), resp.Body()...)
	// One pass over the reply's top level serves the request-ID fallback,
	// the contract and the usage (issue 15).
	var reply schema.Reply
	if status >= 300 {
		raw = up.redact(raw) // providers echo a bad key in their errors
	} else {
		reply = schema.ReadReply(raw)
		if att.ProviderRequestID == "" {
			att.ProviderRequestID = reply.ID(raw)
		}
	}
	verdict := schema.Verdict{Result: capture.VerdictNone}
	var racc *schema.StreamAccumulator // a Responses body's message (responses.go)
	if status < 300 && x.ep == epResponses {
		racc = readResponseBody(raw)
		defer releaseResponseAcc(racc)
		if !x.contr.Empty() {
			verdict = x.contr.CheckStream(racc)
			att.Contract = verdict.Result
		}
	}
	if status < 300 && x.ep == epChat && !x.contr.Empty() {
		verdict = x.contr.CheckReply(raw, &reply)
		att.Contract = verdict.Result
	}
	if status < 300 && (x.ep == epChat || x.ep == epResponses) && !x.contr.Empty() {
		if verdict.Result == capture.VerdictFail && x.route.Config.Contract.Mode == configs.ModeEnforce {
			x.discard(&att, raw)
			x.rec.Attempts = append(x.rec.Attempts, att)
			x.respRaw = raw
			return resultRetry, statusErr(fasthttp.StatusBadGateway, "server_error", "contract_violation", capture.OutcomeContractFail,
				"contract violation: "+strings.Join(verdict.Reasons, "; ")), verdict
		}
	}
	if status < 300 {
		t.Health.Success()
	}
	x.rec.Attempts = append(x.rec.Attempts, att)
	g.commitTarget(ctx, x, t, model, att.ProviderRequestID)
	if status >= 300 {
		reply = schema.ReadReply(raw)
	}
	if u := reply.Usage; reply.HasUsage {
		x.rec.Usage = capture.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens, CachedTokens: u.CachedTokens}
	}
	x.rec.Contract = capture.Verdict{Verdict: verdict.Result, Reasons: verdict.Reasons}
	ctx.Response.Header.Set("x-cairn-contract", verdict.Result)
	ctx.SetStatusCode(status)
	copyResponseHeaders(&ctx.Response.Header, &resp.Header)
	ctx.Response.SetBodyRaw(raw)
	x.respRaw = raw
	x.reply, x.replyRead = reply, true
	x.rec.Status = status
	x.rec.TTFTMS = att.LatencyMS
	x.setRaw(capture.RawBodies{RequestBody: x.body, ResponseBody: raw})
	if racc != nil {
		g.noteResponseReply(x, t, model, reply.ID(raw), racc)
	}
	switch {
	case status >= 400:
		x.rec.Outcome = capture.OutcomeUpstream4xx
		x.rec.Error = fmt.Sprintf("upstream %s answered %d", t.Provider.Name, status)
	case verdict.Result == capture.VerdictFail:
		x.rec.Outcome = capture.OutcomeContractFail
		x.rec.Error = "contract violation: " + strings.Join(verdict.Reasons, "; ")
	}
	noteContentFilter(x, status, raw)
	return resultDone, nil, verdict
}

// upstreamFailed records a transport failure (connect error, timeout, reset)
// and marks the target's health.
func (g *Gateway) upstreamFailed(x *exchange, t *routing.Target, att capture.Attempt, err error) (attemptResult, *StatusError, schema.Verdict) {
	if g.pastDrain.Load() {
		// The drain deadline closed the upstream connection: not the
		// target's failure, and no fallback is tried.
		att.Error = "cut at the drain deadline"
		x.rec.Attempts = append(x.rec.Attempts, att)
		x.drainCut = true
		return resultRetry, errCutAtDrain, schema.Verdict{}
	}
	class, text := classify(err)
	att.Error = text
	x.rec.Attempts = append(x.rec.Attempts, att)
	t.Health.Failure()
	if errors.Is(class, errUpstreamTimeout) {
		return resultRetry, statusErr(fasthttp.StatusGatewayTimeout, "server_error", "upstream_timeout", capture.OutcomeTimeout,
			fmt.Sprintf("upstream %s did not answer in time", t.Provider.Name)), schema.Verdict{}
	}
	return resultRetry, statusErr(fasthttp.StatusBadGateway, "server_error", "upstream_error", capture.OutcomeUpstreamError,
		fmt.Sprintf("upstream %s failed: %s", t.Provider.Name, failureText(err))), schema.Verdict{}
}

// upstreamStatus judges an upstream status: 5xx and 429 are retryable
// failures (5xx count against the target's health); other statuses are
// relayed as the provider sent them.
func (g *Gateway) upstreamStatus(x *exchange, t *routing.Target, att *capture.Attempt, status int) *StatusError {
	switch {
	case status >= 500:
		t.Health.Failure()
		att.Error = "upstream status " + strconv.Itoa(status)
		x.rec.Attempts = append(x.rec.Attempts, *att)
		return statusErr(fasthttp.StatusBadGateway, "server_error", "upstream_error", capture.OutcomeUpstreamError,
			fmt.Sprintf("upstream %s answered %d", t.Provider.Name, status))
	case status == fasthttp.StatusTooManyRequests:
		att.Error = "upstream rate limited"
		x.rec.Attempts = append(x.rec.Attempts, *att)
		se := statusErr(fasthttp.StatusTooManyRequests, "server_error", "upstream_rate_limited", capture.OutcomeUpstream429,
			fmt.Sprintf("upstream %s is rate limiting the gateway", t.Provider.Name))
		return se
	}
	return nil
}

// commitTarget sets the routing headers for the target that answers.
func (g *Gateway) commitTarget(ctx *fasthttp.RequestCtx, x *exchange, t *routing.Target, model, providerID string) {
	x.rec.Provider = t.Provider.Name
	x.rec.Model = model
	x.rec.Target = t.Label()
	x.rec.Cohort = t.Cohort
	x.rec.ProviderRequestID = providerID
	h := &ctx.Response.Header
	h.Set("x-cairn-route", x.route.Name)
	h.Set("x-cairn-cohort", t.Cohort)
	setTargetHeader(h, t.Provider.Name, model)
	if providerID != "" {
		h.Set("x-cairn-provider-request-id", providerID)
	}
}

func copyResponseHeaders(dst *fasthttp.ResponseHeader, src *fasthttp.ResponseHeader) {
	for _, n := range relayedHeaders {
		if v := src.Peek(n); len(v) > 0 {
			dst.SetBytesV(n, v)
		}
	}
}
