package proxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/routing"
	"github.com/cairnhq/cairn/routing/ratelimit"
	"github.com/cairnhq/cairn/schema"
)

type endpoint uint8

const (
	epChat endpoint = iota
	epEmbeddings
	epModels
	epCompletions // legacy /v1/completions
	epResponses   // /v1/responses (responses.go)
	epOther
)

func (e endpoint) String() string {
	switch e {
	case epChat:
		return "chat.completions"
	case epEmbeddings:
		return "embeddings"
	case epModels:
		return "models"
	case epCompletions:
		return "completions"
	case epResponses:
		return "responses"
	}
	return "other"
}

func (e endpoint) path() string {
	switch e {
	case epEmbeddings:
		return "/embeddings"
	case epCompletions:
		return "/completions"
	case epResponses:
		return "/responses"
	}
	return "/chat/completions"
}

// exchange is one client request's state. It is owned by the handler and,
// for a stream, handed over whole to the stream writer; nothing in it
// aliases ctx.
type exchange struct {
	g      *Gateway
	id     string
	start  time.Time
	ep     endpoint
	rec    *capture.Record
	span   *capture.Span
	rawBox *capture.RawBodies // the box's raw bodies (setRaw)
	cfg    *configs.Config
	key    *configs.Key
	limits ratelimit.Limits
	// reserved is the token budget the limiter holds for this request
	// until finish charges its usage.
	reserved ratelimit.Reservation
	route    *routing.Route
	req      schema.Request
	body     []byte // owned copy of the request body
	// bodyParsed says body is the request the parser accepted (valid
	// JSON), not a refused body's prefix: capture need not check it.
	bodyParsed bool
	sticky     string
	contr      schema.Contract
	slot       bool
	held       int64  // request body bytes held in g.bodies (body_budget.go)
	tp         []byte // traceparent sent upstream (in tpBuf)
	tpBuf      [55]byte

	temperature *float64 // the box's; the record's Params.Temperature points there

	respRaw []byte // owned upstream body (non-streaming) for capture
	// reply is what schema.ReadReply found in respRaw (replyRead): the
	// refusal judge reads choices[0] from it instead of the whole body.
	reply     schema.Reply
	replyRead bool

	// lastReply is the last attempt's upstream error answer (429, 5xx);
	// nil when the last attempt failed otherwise.
	lastReply *upstreamReply

	// discardedTokens are the tokens upstream reported for attempts whose
	// answer the client never got (a 5xx or 429 with usage, an enforce
	// contract failure, a buffered stream that broke or failed). The
	// provider billed them, so finish charges them to the key too.
	discardedTokens int
	// estimatedTokens are charged for streams that ended without the
	// provider's usage (stream_estimate.go).
	estimatedTokens int

	// drainCut is set when the drain deadline cut this request's upstream
	// call (or came before it): it is answered errCutAtDrain.
	drainCut bool

	// pinned is the target that created the response a Responses request
	// continues (previous_response_id); nil otherwise (responses.go).
	pinned *routing.Target
}

// discard counts the usage an upstream reported in a body whose answer is
// thrown away, on the attempt and in the exchange (issue 12.11).
func (x *exchange) discard(att *capture.Attempt, body []byte) {
	if u, ok := schema.ReadUsage(body); ok {
		x.discardUsage(att, u)
	}
}

func (x *exchange) discardUsage(att *capture.Attempt, u schema.Usage) {
	n := u.TotalTokens
	if n <= 0 {
		n = u.PromptTokens + u.CompletionTokens
	}
	if n <= 0 {
		return
	}
	att.DiscardedTokens += n
	x.discardedTokens += n
}

// Provider request ID headers, in the order they are looked for.
var providerIDHeaders = []string{"x-request-id", "request-id", "anthropic-request-id", "apim-request-id", "x-amzn-requestid"}

func providerRequestID(h *fasthttp.ResponseHeader) string {
	for _, n := range providerIDHeaders {
		if v := h.Peek(n); len(v) > 0 {
			return string(v)
		}
	}
	return ""
}

func (g *Gateway) serveAPI(ctx *fasthttp.RequestCtx) {
	if msg := framingError(&ctx.Request.Header); msg != "" {
		// Ambiguous framing (request smuggling): refuse, and close so the
		// bytes after this request are never read as another one.
		x := g.begin(ctx, epOther)
		ctx.SetConnectionClose()
		g.fail(ctx, x, badRequest("", msg))
		g.finish(x)
		return
	}
	path := ctx.Path()
	if len(path) > 3 && string(path[:3]) == "/v1" {
		path = path[3:]
	}
	switch string(path) {
	case "/chat/completions":
		g.proxyRequest(ctx, epChat)
	case "/embeddings":
		g.proxyRequest(ctx, epEmbeddings)
	case "/completions":
		g.proxyRequest(ctx, epCompletions)
	case "/responses":
		g.proxyRequest(ctx, epResponses)
	case "/models":
		g.listModels(ctx)
	default:
		if id, ok := strings.CutPrefix(string(path), "/models/"); ok && id != "" {
			g.retrieveModel(ctx, id)
			return
		}
		if rest, ok := strings.CutPrefix(string(path), "/responses/"); ok {
			g.serveResponseByID(ctx, rest)
			return
		}
		x := g.begin(ctx, epOther)
		g.fail(ctx, x, errNotFound)
		g.finish(x)
	}
}

// serveParseError answers requests fasthttp could not read: headers over
// the limit (431), bodies over the limit (413), malformed requests (400).
// Each still yields one capture record.
func (g *Gateway) serveParseError(ctx *fasthttp.RequestCtx, err error) {
	if g.idleConn(ctx) {
		return // never sent a request line: no request, no record
	}
	x := g.begin(ctx, epOther)
	var se *StatusError
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		se = statusErr(fasthttp.StatusRequestHeaderFieldsTooLarge, "invalid_request_error", "headers_too_large", capture.OutcomeBadRequest,
			"request headers are larger than the gateway accepts")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		se = statusErr(fasthttp.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", capture.OutcomeBadRequest,
			"request body is larger than the gateway accepts")
	default:
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			se = statusErr(fasthttp.StatusRequestTimeout, "invalid_request_error", "request_timeout", capture.OutcomeBadRequest,
				"timed out reading the request")
		} else {
			se = badRequest("", "malformed HTTP request")
		}
	}
	if se.Status == fasthttp.StatusRequestEntityTooLarge || se.Status == fasthttp.StatusRequestHeaderFieldsTooLarge {
		// The client may still be sending: answer, then discard what it
		// sends before closing, so it reads this answer instead of a reset.
		c := ctx.Conn()
		if bc, ok := c.(*byteConn); ok {
			c = bc.Conn // the idle-connection wrapper sits over the lingering one
		}
		if lc, ok := c.(*lingerConn); ok {
			lc.lingerOnClose()
		}
	}
	ctx.SetConnectionClose()
	g.fail(ctx, x, se)
	g.finish(x)
}

// begin starts an exchange: the gateway request ID, the record's identity
// fields and the span. The exchange, its record and span are one
// allocation, and the request ID and trace ID share one string.
func (g *Gateway) begin(ctx *fasthttp.RequestCtx, ep endpoint) *exchange {
	now := g.now()
	cfg := g.live.Load().Config()
	box := &exchangeBox{}
	x := exchanges.Get().(*exchange)
	*x = exchange{g: g, start: now, ep: ep, cfg: cfg, rec: &box.rec, span: &box.span, rawBox: &box.raw, temperature: &box.temperature}
	h := &ctx.Request.Header
	g.tracing.StartInto(x.span, string(h.Peek("traceparent")), ep.String())
	var idBuf [idLen + 32]byte
	ids := string(x.span.AppendTraceID(g.ids.AppendNext(idBuf[:0])))
	x.id = ids[:idLen]
	x.tp = x.span.AppendTraceparent(x.tpBuf[:0])
	g.recordsBegun.Add(1)
	g.recordsOpen.Add(1)
	ctx.Response.Header.Set("x-request-id", x.id)
	*x.rec = capture.Record{
		Attempts:         box.att[:0:1],
		GatewayRequestID: x.id,
		TraceID:          ids[idLen:],
		ReceivedAt:       now.UTC(),
		Endpoint:         ep.String(),
		Release:          cfg.Release,
		ConfigRevision:   cfg.Revision,
		Headers:          g.values.recordHeaders(h),
	}
	hdr := x.rec.Headers
	if v := h.Peek("x-client-request-id"); len(v) > 0 {
		x.rec.ClientRequestID = clipShared(v, 128, hdr["x-client-request-id"])
	} else if v := h.Peek("x-request-id"); len(v) > 0 {
		x.rec.ClientRequestID = clipShared(v, 128, hdr["x-request-id"])
	}
	if v := h.Peek("x-client-name"); len(v) > 0 {
		x.rec.Client = clipShared(v, 128, hdr["x-client-name"])
	} else if v := h.UserAgent(); len(v) > 0 {
		x.rec.Client = clipShared(v, 128, hdr["user-agent"])
	}
	return x
}

// clipShared is clip(b, n), reusing s (a string of b's bytes) when b fits.
func clipShared(b []byte, n int, s string) string {
	if len(b) <= n && len(s) == len(b) {
		return s
	}
	return clip(b, n)
}

func clip(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// fail writes se as the response and records it.
func (g *Gateway) fail(ctx *fasthttp.RequestCtx, x *exchange, se *StatusError) {
	writeError(ctx, se)
	x.rec.Status = se.Status
	x.rec.Outcome = se.Outcome
	x.rec.Error = se.Error()
	if x.rec.Raw == nil {
		x.setRaw(capture.RawBodies{RequestBody: x.body})
	}
}

// finish completes the record and hands it to the capture writer. It is
// called exactly once per exchange.
func (g *Gateway) finish(x *exchange) {
	r := x.rec
	r.LatencyMS = msSince(x.start, g.now())
	if r.Outcome == "" {
		r.Outcome = capture.OutcomeOK
	}
	if r.Contract.Verdict == "" {
		r.Contract.Verdict = capture.VerdictNone
	}
	if r.Raw == nil {
		x.setRaw(capture.RawBodies{RequestBody: x.body})
	} else if r.Raw.RequestBody == nil {
		r.Raw.RequestBody = x.body
	}
	r.Raw.RequestValid = x.bodyParsed && len(r.Raw.RequestBody) == len(x.body)
	g.judgeMessage(x)
	// A request that reserved tokens settles even with no usage, so the
	// reservation goes back to the key's budget.
	if tokens := r.Usage.TotalTokens + x.discardedTokens + x.estimatedTokens; x.key != nil && x.limits.TPM > 0 && (tokens > 0 || x.reserved.Tokens > 0) {
		g.chargeUsage(charge{key: x.key.Name, limits: x.limits, reqID: x.id, tokens: tokens, res: x.reserved})
	}
	if x.slot {
		<-g.sem
		x.slot = false
	}
	g.bodies.release(x.held)
	x.held = 0
	x.span.End(r)
	g.recordsOpen.Add(-1)
	// x is not used after this: cleared (so that a pooled exchange keeps
	// neither the parsed request, which aliases the body, nor the
	// contract's compiled schemas, the upstream answer or the config
	// alive) and recycled. The record is in its own box.
	*x = exchange{}
	exchanges.Put(x)
	if !g.noCapture {
		g.capture.Enqueue(r)
	}
}

func msSince(t0, t1 time.Time) float64 {
	return float64(t1.Sub(t0).Microseconds()) / 1000
}

// proxyRequest serves chat completions and embeddings.
func (g *Gateway) proxyRequest(ctx *fasthttp.RequestCtx, ep endpoint) {
	x := g.begin(ctx, ep)
	if se := g.admit(ctx, x); se != nil {
		if x.body == nil {
			x.body = ctx.PostBody() // only read by refusedBody, which copies
		}
		x.body, x.bodyParsed = refusedBody(x.body), false
		g.fail(ctx, x, se)
		g.finish(x)
		return
	}
	if g.forward(ctx, x) {
		return // a stream writer owns x now and finishes it
	}
	g.finish(x)
}

// attemptResult says what one upstream try produced.
type attemptResult uint8

const (
	resultRetry  attemptResult = iota // failed before any byte reached the client
	resultDone                        // the response is in ctx (success or relayed error)
	resultStream                      // a stream writer took over
)

// forward tries the plan's targets in order. It reports whether a stream
// writer took ownership of x.
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, x *exchange) bool {
	var planBuf [8]*routing.Target
	plan, cohort := x.route.Plan(planBuf[:0], x.sticky, rand.Uint64())
	if x.pinned != nil {
		// previous_response_id: only the target holding that state.
		plan, cohort = append(planBuf[:0], x.pinned), x.pinned.Cohort
	}
	x.rec.Cohort = cohort
	if len(plan) > 0 {
		// Until a target answers, the record names the one it was routed to.
		x.rec.Provider, x.rec.Model, x.rec.Target = plan[0].Provider.Name, plan[0].UpstreamModel(x.req.Model), plan[0].Label()
	}
	var last *StatusError
	var lastVerdict schema.Verdict
	for i, t := range plan {
		if i >= 1+len(x.route.Fallbacks)+1 || x.drainCut {
			break
		}
		if g.pastDrain.Load() {
			x.drainCut = true // no new upstream call after the drain deadline
			break
		}
		res, se, verdict := g.attempt(ctx, x, t)
		switch res {
		case resultStream:
			return true
		case resultDone:
			return false
		}
		last = se
		if verdict.Result == capture.VerdictFail {
			lastVerdict = verdict
		}
	}
	ctx.Response.Header.Set("x-cairn-route", x.route.Name)
	ctx.Response.Header.Set("x-cairn-cohort", x.rec.Cohort)
	if x.drainCut {
		ctx.Response.Header.Set("x-cairn-contract", capture.VerdictNone)
		ctx.SetConnectionClose()
		g.fail(ctx, x, errCutAtDrain)
		return false
	}
	if x.lastReply != nil && last != nil && last.Code != "contract_violation" {
		// No fallback answered and the last upstream did: relay its answer.
		ctx.Response.Header.Set("x-cairn-contract", capture.VerdictNone)
		g.relayUpstreamError(ctx, x, last)
		return false
	}
	if lastVerdict.Result == capture.VerdictFail && (last == nil || last.Code == "contract_violation") {
		x.rec.Contract = capture.Verdict{Verdict: capture.VerdictFail, Reasons: lastVerdict.Reasons}
		last = statusErr(fasthttp.StatusBadGateway, "server_error", "contract_violation", capture.OutcomeContractFail,
			"every upstream response broke the contract: "+strings.Join(lastVerdict.Reasons, "; "))
	}
	if last == nil {
		last = statusErr(fasthttp.StatusBadGateway, "server_error", "upstream_error", capture.OutcomeUpstreamError, "no upstream available")
	}
	x.nameLastAttempt(&ctx.Response.Header)
	ctx.Response.Header.Set("x-cairn-contract", x.rec.Contract.Verdict)
	if x.rec.Contract.Verdict == "" {
		ctx.Response.Header.Set("x-cairn-contract", capture.VerdictNone)
	}
	g.fail(ctx, x, last)
	return false
}

// relayedHeaders are upstream response headers passed to the client.
var relayedHeaders = []string{"content-type", "openai-processing-ms", "openai-version", "openai-model", "retry-after", "retry-after-ms", "x-should-retry"}

// listModels answers GET /v1/models with the route names.
func (g *Gateway) listModels(ctx *fasthttp.RequestCtx) {
	x := g.begin(ctx, epModels)
	defer g.finish(x)
	if !ctx.IsGet() {
		g.fail(ctx, x, errMethod)
		return
	}
	key, se := authenticate(x.cfg, &ctx.Request.Header)
	if se != nil {
		g.fail(ctx, x, se)
		return
	}
	if key != nil {
		x.rec.Key = key.Name
	}
	created := x.start.Unix()
	buf := make([]byte, 0, 256)
	buf = append(buf, `{"object":"list","data":[`...)
	n := 0
	for _, r := range x.cfg.Routes {
		if key != nil && !key.Allows(r.Name) {
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = append(buf, `{"id":`...)
		buf = strconv.AppendQuote(buf, r.Name)
		buf = append(buf, `,"object":"model","created":`...)
		buf = strconv.AppendInt(buf, created, 10)
		buf = append(buf, `,"owned_by":"cairn"}`...)
	}
	buf = append(buf, "]}"...)
	ctx.SetContentType("application/json")
	ctx.SetBody(buf)
	x.rec.Status = fasthttp.StatusOK
}

var _ = context.Background
