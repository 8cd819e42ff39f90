package proxy

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/routing/ratelimit"
	"github.com/cairnhq/cairn/schema"
)

// authenticate finds the key of the bearer token (or Azure-style api-key
// header): it hashes the token with SHA-256 and looks the digest up in the
// config's key index, then compares the whole digest in constant time
// (configs.Config.KeyByDigest). Its cost depends on the token's length,
// never on the number of keys or on how much of a key the token shares
// with a real one, and an unknown key costs what a known one does (issue
// 15). With no keys configured the gateway is open.
func authenticate(cfg *configs.Config, h *fasthttp.RequestHeader) (*configs.Key, *StatusError) {
	if len(cfg.Keys) == 0 {
		return nil, nil
	}
	var token []byte
	auth := h.Peek("Authorization")
	const prefix = "Bearer "
	switch {
	case len(auth) > len(prefix) && bytes.EqualFold(auth[:len(prefix)], []byte(prefix)):
		token = auth[len(prefix):]
	default:
		if k := h.Peek("api-key"); len(k) > 0 { // Azure-style clients
			token = k
		} else {
			return nil, errMissingKey
		}
	}
	sum := sha256.Sum256(token)
	if k := cfg.KeyByDigest(&sum); k != nil {
		return k, nil
	}
	return nil, errBadKey
}

// admit runs everything before the first upstream try: concurrency slot,
// auth, body parsing, route match, key permissions, rate limit, contract.
func (g *Gateway) admit(ctx *fasthttp.RequestCtx, x *exchange) *StatusError {
	if g.stopping.Load() {
		ctx.SetConnectionClose()
		return errShuttingDown
	}
	select {
	case g.sem <- struct{}{}:
		x.slot = true
	default:
		ctx.Response.Header.Set("retry-after", "1")
		return errOverloaded
	}
	if !ctx.IsPost() {
		return errMethod
	}
	tbl, key, se := g.keyed(ctx, x)
	if se != nil {
		return se
	}
	x.key = key
	if key != nil {
		x.limits = ratelimit.Limits{RPM: key.RPM, TPM: key.TPM, FailClosed: key.FailClosed}
	}
	// Parse the request's own buffer and copy it only once it parsed, so
	// that a refused body (a hostile client's nesting bomb or 1 MiB model
	// name) costs no copy; the record keeps a refusedBody prefix.
	body := ctx.PostBody()
	var err error
	switch x.ep {
	case epChat:
		x.req, err = schema.ParseChatRequest(body)
	case epCompletions:
		x.req, err = schema.ParseCompletionsRequest(body)
	case epResponses:
		x.req, err = schema.ParseResponsesRequest(body)
	default:
		x.req, err = schema.ParseEmbeddingsRequest(body)
	}
	if err != nil {
		return asStatusError(err)
	}
	held, ok := g.bodies.acquire(int64(len(body)), bodyBudgetWait)
	if !ok {
		ctx.Response.Header.Set("retry-after", "1")
		return errBodyBudget
	}
	x.held = held
	x.body = append([]byte(nil), body...)
	x.bodyParsed = true
	x.req.Rebase(body, x.body)
	// Nothing reads the server's copy again: with ReduceMemoryUsage its
	// buffer goes back to fasthttp's pool now rather than after the
	// response, so a stream (or a slow 1 MB request) does not hold the
	// body twice (issue 15).
	ctx.Request.ResetBody()
	x.rec.RequestedModel = x.req.Model
	x.rec.UserHash = g.userHashes.Sum(x.req.User) // keyed: the raw user is never recorded (issue 14.7)
	x.rec.Params = capture.Params{
		Stream: x.req.Stream, MaxTokens: x.req.MaxTokens,
		ResponseFormat: x.req.ResponseFormat, Tools: x.req.ToolCount,
	}
	if x.req.HasTemperature {
		*x.temperature = x.req.Temperature
		x.rec.Params.Temperature = x.temperature // in the record's box
	}
	x.route = tbl.Match(x.req.Model)
	if x.route == nil {
		se := statusErr(fasthttp.StatusNotFound, "invalid_request_error", "model_not_found", capture.OutcomeNotFound,
			fmt.Sprintf("the model %q does not exist or you do not have access to it", modelPrefix(x.req.Model)))
		se.Param = "model"
		return se
	}
	rc := x.route.Config
	x.rec.Route = x.route.Name
	x.rec.PromptVersion = rc.Prompt.Version
	x.rec.Flags = rc.Flags
	if key != nil && !key.Allows(x.route.Name) {
		se := statusErr(fasthttp.StatusForbidden, "invalid_request_error", "model_not_allowed", capture.OutcomeForbidden,
			fmt.Sprintf("this key may not use the model %q", modelPrefix(x.req.Model)))
		se.Param = "model"
		return se
	}
	if limit := rc.MaxBodyBytes; limit > 0 && len(x.body) > limit {
		return statusErr(fasthttp.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", capture.OutcomeBadRequest,
			fmt.Sprintf("request body is larger than %d bytes, the limit of this model", limit))
	}
	if x.ep == epResponses {
		if se := g.pinPrevious(x, tbl); se != nil {
			return se
		}
	}
	if key != nil && (x.limits.RPM > 0 || x.limits.TPM > 0) {
		// The Redis limiter spends a leased slice locally; a request waits
		// on Redis only when its replica holds none for the key, at most
		// ratelimit.redis_timeout.
		d := g.limiter.Check(g.baseCtx, key.Name, x.limits, x.id)
		setRateLimitHeaders(&ctx.Response.Header, x.limits, d)
		if !d.Allowed {
			return rateLimited(&ctx.Response.Header, key.Name, x.limits, d)
		}
		x.reserved = d.Reservation
	}
	if x.ep == epChat || x.ep == epResponses {
		x.contr, err = g.contracts.Prepare(rc.Contract.Schema, &x.req)
		if err != nil {
			return asStatusError(err)
		}
	}
	switch {
	case rc.Sticky == "key":
		if key != nil {
			x.sticky = key.Name
		}
	case rc.Sticky == "user":
		x.sticky = x.req.User
	case strings.HasPrefix(rc.Sticky, "header:"):
		x.sticky = string(ctx.Request.Header.Peek(rc.Sticky[len("header:"):]))
	}
	return nil
}

// rateLimited sets retry-after and retry-after-ms (as OpenAI does) and
// returns the key's 429: type "requests" or "tokens", code
// rate_limit_exceeded. The x-ratelimit-* headers are already set.
func rateLimited(h *fasthttp.ResponseHeader, keyName string, l ratelimit.Limits, d ratelimit.Decision) *StatusError {
	secs := int((d.RetryAfter + time.Second - 1) / time.Second)
	h.Set("retry-after", strconv.Itoa(max(secs, 1)))
	h.Set("retry-after-ms", strconv.FormatInt(max(d.RetryAfter.Milliseconds(), 1), 10))
	kind := d.Kind
	if kind != ratelimit.KindTokens {
		kind = ratelimit.KindRequests
	}
	var msg string
	switch {
	case d.NoLease:
		msg = fmt.Sprintf("rate limiter busy: no budget for key %s arrived from the shared limiter in time; retry after %s", keyName, d.RetryAfter.Round(time.Millisecond))
	case d.Degraded && l.FailClosed:
		msg = fmt.Sprintf("rate limiter unavailable and key %s is fail_closed; retry after %s", keyName, d.RetryAfter.Round(time.Millisecond))
	case kind == ratelimit.KindTokens:
		msg = fmt.Sprintf("rate limit reached for key %s on tokens per minute (TPM): limit %d; retry after %s", keyName, l.TPM, d.RetryAfter.Round(time.Millisecond))
	default:
		msg = fmt.Sprintf("rate limit reached for key %s on requests per minute (RPM): limit %d; retry after %s", keyName, l.RPM, d.RetryAfter.Round(time.Millisecond))
	}
	return statusErr(fasthttp.StatusTooManyRequests, kind, "rate_limit_exceeded", capture.OutcomeRateLimited, msg)
}

// setRateLimitHeaders writes OpenAI's x-ratelimit-{limit,remaining,reset}
// -{requests,tokens} headers for the dimensions l limits. Values are built
// in a stack buffer; SetBytesV copies them.
func setRateLimitHeaders(h *fasthttp.ResponseHeader, l ratelimit.Limits, d ratelimit.Decision) {
	var buf [24]byte
	if l.RPM > 0 {
		h.SetBytesV("x-ratelimit-limit-requests", strconv.AppendInt(buf[:0], int64(d.LimitRequests), 10))
		h.SetBytesV("x-ratelimit-remaining-requests", strconv.AppendInt(buf[:0], int64(max(d.RemainingRequests, 0)), 10))
		h.SetBytesV("x-ratelimit-reset-requests", appendReset(buf[:0], d.ResetRequests))
	}
	if l.TPM > 0 {
		h.SetBytesV("x-ratelimit-limit-tokens", strconv.AppendInt(buf[:0], int64(d.LimitTokens), 10))
		h.SetBytesV("x-ratelimit-remaining-tokens", strconv.AppendInt(buf[:0], int64(max(d.RemainingTokens, 0)), 10))
		h.SetBytesV("x-ratelimit-reset-tokens", appendReset(buf[:0], d.ResetTokens))
	}
}

// appendReset appends a reset as OpenAI writes it, which is Go's
// time.Duration.String of the value rounded to the millisecond below one
// second and to the second above: "12ms", "59s", "1m0s". Negative is "0s".
func appendReset(dst []byte, d time.Duration) []byte {
	if d < time.Second {
		ms := d.Round(time.Millisecond).Milliseconds()
		switch {
		case ms <= 0:
			return append(dst, "0s"...)
		case ms < 1000:
			return append(strconv.AppendInt(dst, ms, 10), "ms"...)
		}
	}
	secs := int64(d.Round(time.Second) / time.Second)
	if h := secs / 3600; h > 0 {
		dst = append(strconv.AppendInt(dst, h, 10), 'h')
	}
	if secs >= 60 {
		dst = append(strconv.AppendInt(dst, secs/60%60, 10), 'm')
	}
	return append(strconv.AppendInt(dst, secs%60, 10), 's')
}
