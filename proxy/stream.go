package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/routing"
	"github.com/cairnhq/cairn/schema"
	"github.com/cairnhq/cairn/schema/anthropic"
)

var sseDone = []byte("data: [DONE]\n\n")

// readBufPool holds upstream read buffers for streams (stream_body.go).
var readBufPool = sync.Pool{New: func() any { b := make([]byte, streamBufSize); return &b }}

// streamRelay moves one upstream SSE stream to the client. It owns the
// upstream response until close; the client side is fasthttp's chunked
// writer, which the server goroutine hands the stream's body after the
// handler returned (relayBody).
type streamRelay struct {
	x      *exchange
	t      *routing.Target
	up     *upstream
	model  string
	resp   *fasthttp.Response
	dc     *upstreamConn
	r      io.Reader
	bufp   *[]byte
	parser schema.SSEParser
	acc    schema.StreamAccumulator
	out    []byte // framed events not yet written to the client
	done   bool   // saw [DONE]
	events int
	first  time.Time
	end    time.Time // when stream_max_duration cuts the stream
	text   []byte    // legacy completions: choices[0].text accumulated, for capture
	// guard holds back content that may be the start of a secret cut
	// across events (stream_secrets.go); nil without secrets.
	guard *splitGuard
	ready [][]byte // scratch for guard
	// tr translates an anthropic provider's events into chunks, which
	// trFeed hands to onEvent (stream_translate.go); nil for other kinds.
	tr     *anthropic.Stream
	trFeed func(schema.Event) error
	// cut is set when the gateway ends the stream at its drain deadline;
	// the upstream connection is then closed under it.
	cut atomic.Bool
	// estimated is set once the attempt was charged an estimate
	// (stream_estimate.go), so it is never charged twice.
	estimated bool
}

// maxCompletionText bounds the legacy completion text kept for capture.
const maxCompletionText = 1 << 20

var (
	errClientClosed = errors.New("client closed the connection")
	errEmptyStream  = errors.New("stream ended before its first event")
)

// pump reads once from upstream and frames the events it completes into
// s.out. It returns io.EOF at the end of the upstream body.
func (s *streamRelay) pump() error {
	buf := *s.bufp
	n, err := s.r.Read(buf)
	if n > 0 {
		if perr := s.parser.Feed(buf[:n], s.feed()); perr != nil {
			return perr
		}
	}
	if errors.Is(err, io.EOF) {
		_ = s.parser.Flush(s.feed())
		s.releaseHeld()
		return io.EOF
	}
	if err != nil {
		s.releaseHeld()
	}
	return err
}

// releaseHeld frames the events the guard still holds: the stream ended,
// so they are all there is (none holds a whole secret).
func (s *streamRelay) releaseHeld() {
	if s.guard == nil {
		return
	}
	for _, d := range s.guard.release(s.ready[:0]) {
		s.frame(d)
	}
}

// frame appends one event for the client.
func (s *streamRelay) frame(data []byte) {
	if s.events == 0 {
		s.first = s.x.g.now()
	}
	s.events++
	if s.x.ep == epResponses {
		// The Responses API names each event: "event: <type>" before its data.
		if typ := schema.ResponsesEventType(data); typ != nil {
			s.out = append(append(append(s.out, "event: "...), typ...), '\n')
		}
	}
	s.out = schema.AppendSSEEvent(s.out, data)
}

func (s *streamRelay) onEvent(ev schema.Event) error {
	if ev.Done {
		s.releaseHeld()
		s.done = true
		s.out = append(s.out, sseDone...)
		return nil
	}
	// Any event may echo a secret: an error event of any shape, content,
	// a tool call (issue 12.4). The parser hands over whole events, so a
	// secret split across two upstream reads is whole here.
	ev.Data = s.x.g.secrets.Bytes(ev.Data)
	s.acc.Add(ev.Data)
	if s.x.ep == epCompletions && len(s.text) < maxCompletionText {
		if v := gjson.GetBytes(ev.Data, "choices.0.text"); v.Type == gjson.String {
			s.text = append(s.text, v.Str...)
		}
	}
	if s.x.ep != epResponses && !s.x.req.IncludeUsage && schema.IsUsageOnlyChunk(ev.Data) {
		return nil // asked upstream for usage on the client's behalf; not theirs
	}
	if s.guard == nil {
		s.frame(ev.Data)
		return nil
	}
	s.ready = s.guard.add(s.ready[:0], ev.Data)
	for _, d := range s.ready {
		s.frame(d)
	}
	return nil
}

// close releases the upstream response. read says the body was read to
// its end (io.EOF): fasthttp has then put the connection back in its pool,
// so it is reset for plain use and must not be closed under the pool (a
// stream that ended without [DONE] or a finish reason closed its pooled
// connection, and the next request on it failed with 502). Otherwise the
// connection is half-read and is closed.
func (s *streamRelay) close(read bool) {
	if s.dc != nil && read {
		s.dc.plainMode()
	}
	if !read && s.dc != nil {
		_ = s.dc.Close()
	}
	_ = s.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(s.resp)
	readBufPool.Put(s.bufp)
}

// attemptStream sends a streaming request. It waits for the first event
// before committing, so a provider that fails or resets before sending
// anything is still retried on the next target.
func (g *Gateway) attemptStream(ctx *fasthttp.RequestCtx, x *exchange, t *routing.Target, up *upstream, body []byte, att capture.Attempt, t0 time.Time) (attemptResult, *StatusError, schema.Verdict) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	up.prepare(req, up.path(x.ep, t.UpstreamModel(x.req.Model)), body, x.tp, true)
	err := up.streamed.DoTimeout(req, resp, up.cfg.Timeout.D())
	fasthttp.ReleaseRequest(req)
	att.LatencyMS = msSince(t0, g.now())
	if err != nil {
		_ = resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
		return g.upstreamFailed(x, t, att, err)
	}
	up.noteKeepAlive(resp)
	status := resp.StatusCode()
	att.Status = status
	att.ProviderRequestID = providerRequestID(&resp.Header)
	model := t.UpstreamModel(x.req.Model)
	if status != fasthttp.StatusOK || !strings.HasPrefix(string(resp.Header.ContentType()), "text/event-stream") {
		// An error (or a provider that ignored stream:true): read it whole.
		raw, rerr := readAllLimited(resp.BodyStream(), int64(up.cfg.MaxResponseBytes))
		raw = up.redact(raw)
		_ = resp.CloseBodyStream()
		hdr := fasthttp.AcquireResponse()
		resp.Header.CopyTo(&hdr.Header)
		fasthttp.ReleaseResponse(resp)
		defer fasthttp.ReleaseResponse(hdr)
		if rerr != nil {
			return g.upstreamFailed(x, t, att, rerr)
		}
		raw, status, rerr = up.translateStreamRaw(x.ep, raw, status, g.now().Unix())
		if rerr != nil {
			return g.upstreamFailed(x, t, att, rerr)
		}
		att.Status = status
		if att.ProviderRequestID == "" && status < 300 {
			att.ProviderRequestID = bodyRequestID(raw)
		}
		if status >= 500 || status == fasthttp.StatusTooManyRequests {
			x.discard(&att, raw)
		}
		if se := g.upstreamStatus(x, t, &att, status); se != nil {
			x.respRaw = raw
			x.noteUpstreamReply(t, model, status, &hdr.Header, raw, att.ProviderRequestID)
			return resultRetry, se, schema.Verdict{}
		}
		if status < 300 {
			t.Health.Success()
		}
		x.rec.Attempts = append(x.rec.Attempts, att)
		g.commitTarget(ctx, x, t, model, att.ProviderRequestID)
		ctx.SetStatusCode(status)
		copyResponseHeaders(&ctx.Response.Header, &hdr.Header)
		ctx.Response.SetBodyRaw(raw)
		x.rec.Status = status
		x.rec.Raw = &capture.RawBodies{RequestBody: x.body, ResponseBody: raw}
		if status >= 400 {
			x.rec.Outcome = capture.OutcomeUpstream4xx
			x.rec.Error = fmt.Sprintf("upstream %s answered %d", t.Provider.Name, status)
		}
		noteContentFilter(x, status, raw)
		return resultDone, nil, schema.Verdict{}
	}

	s := &streamRelay{x: x, t: t, up: up, model: model, resp: resp, r: resp.BodyStream(), bufp: readBufPool.Get().(*[]byte)}
	if x.ep == epResponses {
		s.acc.ForResponses()
	}
	if sec := g.secrets.Secrets(); sec.Len() > 0 {
		s.guard = &splitGuard{s: sec}
	}
	s.translateFrom(up, g.now().Unix())
	s.dc = up.conns.lookup(resp.LocalAddr())
	if s.dc != nil {
		s.end = t0.Add(up.cfg.StreamMaxDuration.D())
		s.dc.streamMode(up.cfg.StreamIdleTimeout.D(), s.end)
	}
	// Wait for the first event (or the end) before committing the status.
	var perr error
	for len(s.out) == 0 && !s.done {
		if perr = s.pump(); perr != nil {
			break
		}
	}
	if len(s.out) == 0 && perr != nil {
		// Nothing reached the client yet, so even a clean end (a
		// close-delimited body that ends after the headers) may fail over.
		eof := errors.Is(perr, io.EOF)
		if eof {
			perr = errEmptyStream
		}
		s.close(eof)
		return g.upstreamFailed(x, t, att, perr)
	}
	t.Health.Success()
	if att.ProviderRequestID == "" {
		att.ProviderRequestID = eventRequestID(s.acc.ID()) // the first event's "id" (issue 14.4)
	}
	x.rec.Attempts = append(x.rec.Attempts, att)
	g.commitTarget(ctx, x, t, model, att.ProviderRequestID)
	x.rec.Status = fasthttp.StatusOK
	if x.ep == epResponses {
		g.rememberResponse(x, t, model, s.acc.ID())
	}

	buffer := x.route.Config.Contract.Mode == configs.ModeEnforce && x.route.Config.Contract.BufferStreams && !x.contr.Empty()
	if buffer {
		return g.bufferStream(ctx, x, s, perr)
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/event-stream; charset=utf-8")
	ctx.Response.Header.Set("cache-control", "no-cache")
	ctx.Response.Header.Set("x-accel-buffering", "no")
	copyStreamHeaders(&ctx.Response.Header, &resp.Header)
	g.streams.Add(1)
	g.streamsOpen.Add(1)
	g.trackStream(s)
	ctx.Response.SetBodyStream(&relayBody{g: g, s: s, perr: perr}, -1)
	return resultStream, nil, schema.Verdict{}
}

func copyStreamHeaders(dst, src *fasthttp.ResponseHeader) {
	for _, n := range []string{"openai-processing-ms", "openai-version", "openai-model"} {
		if v := src.Peek(n); len(v) > 0 {
			dst.SetBytesV(n, v)
		}
	}
}

// relay runs on the server goroutine after the handler returned. It writes
// every framed event and flushes per read, so events reach the client as
// they arrive. A failed flush means the client went away: the upstream
// connection is closed at once (fasthttp has no per-request cancellation).
func (g *Gateway) relay(w streamOut, s *streamRelay, perr error) {
	x := s.x
	rec := x.rec
	complete := false
	defer func() {
		// Read to its end unless the drain deadline closed it under us.
		s.close(complete || errors.Is(perr, io.EOF) && !s.cut.Load())
		g.finishStream(x, s)
	}()
	for {
		if len(s.out) > 0 {
			if _, err := w.Write(s.out); err == nil {
				err = w.Flush()
				if err != nil {
					g.clientGone(rec)
					return
				}
			} else {
				g.clientGone(rec)
				return
			}
			if rec.TTFTMS == 0 && s.events > 0 {
				rec.TTFTMS = msSince(x.start, s.first)
			}
			s.out = s.out[:0]
		}
		if perr != nil {
			break
		}
		perr = s.pump()
	}
	switch {
	case s.cut.Load() && !(errors.Is(perr, io.EOF) && s.done):
		// The drain deadline passed: end the stream with a terminal error
		// the client can act on (retry elsewhere), and record it.
		rec.Outcome = capture.OutcomeShutdown
		rec.Error = fmt.Sprintf("the gateway is shutting down: stream ended at the drain deadline after %d events", s.events)
		_, _ = w.Write(appendStreamError(x.ep, "the gateway is shutting down; retry the request", "server_error", "server_shutting_down"))
		_ = w.Flush()
	case errors.Is(perr, io.EOF) && (s.done || s.acc.FinishReason() != ""):
		complete = true
		if !s.done && x.ep != epResponses { // Responses streams have no [DONE]
			// Upstream ended without [DONE] after a finished choice;
			// the SDKs expect the terminator.
			_, _ = w.Write(sseDone)
			_ = w.Flush()
		}
		if e := s.acc.Err(); e != nil {
			rec.Outcome = capture.OutcomeUpstreamError
			rec.Error = "upstream sent an error event"
		}
	default:
		// The upstream broke mid-stream: the status is already 200, so the
		// client gets a terminal SSE error event (never a retry).
		// The event names the failure's kind, never the error's text
		// (socket addresses); the record keeps the detail (issue 12.15).
		class, detail := classify(perr)
		code, outcome := "upstream_error", capture.OutcomeUpstreamError
		text := streamBreakText(perr)
		if errors.Is(class, errUpstreamTimeout) && !errors.Is(perr, io.EOF) {
			code, outcome = "upstream_timeout", capture.OutcomeTimeout
			cfg := s.up.cfg
			text = timeoutText(g.now(), s.end, cfg.StreamIdleTimeout.D(), cfg.StreamMaxDuration.D())
		}
		msg := fmt.Sprintf("upstream %s: %s after %d events", s.t.Provider.Name, text, s.events)
		rec.Outcome = outcome
		rec.Error = msg
		if detail != text && !errors.Is(class, errUpstreamTimeout) {
			rec.Error += " (" + detail + ")"
		}
		s.t.Health.Failure()
		_, _ = w.Write(appendStreamError(x.ep, g.secrets.String(msg), "server_error", code))
		_ = w.Flush()
	}
}

func (g *Gateway) clientGone(rec *capture.Record) {
	rec.Outcome = capture.OutcomeClientClosed
	rec.Error = errClientClosed.Error()
	rec.Status = 499
}

// finishStream judges the accumulated stream, fills the record and
// finishes the exchange.
func (g *Gateway) finishStream(x *exchange, s *streamRelay) {
	rec := x.rec
	if u, ok := s.acc.Usage(); ok {
		rec.Usage = capture.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens, CachedTokens: u.CachedTokens}
	} else {
		// No usage: the stream broke, or the provider ended it with [DONE]
		// without the usage event Cairn asked for (include_usage).
		s.chargeEstimate()
	}
	if !x.contr.Empty() && rec.Outcome == "" {
		v := x.contr.CheckStream(&s.acc)
		rec.Contract = capture.Verdict{Verdict: v.Result, Reasons: v.Reasons}
		if v.Result == capture.VerdictFail {
			rec.Outcome = capture.OutcomeContractFail
			rec.Error = "contract violation: " + strings.Join(v.Reasons, "; ")
		}
	}
	content := s.acc.Content()
	if content == "" && len(s.text) > 0 {
		content = string(s.text) // a legacy completion streams text, not deltas
	}
	rec.Raw = &capture.RawBodies{
		RequestBody:     x.body,
		StreamContent:   content,
		StreamToolCalls: toolCallsJSON(s.acc.ToolCalls()),
		FinishReason:    s.acc.FinishReason(),
	}
	if e := s.acc.Err(); e != nil {
		rec.Raw.ResponseBody = append([]byte(nil), e...)
	}
	g.judgeStream(x, &s.acc, rec)
	g.finish(x)
}

func toolCallsJSON(tcs []schema.ToolCall) []byte {
	if len(tcs) == 0 {
		return nil
	}
	type tc struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	out := make([]tc, len(tcs))
	for i, t := range tcs {
		out[i] = tc{ID: t.ID, Name: t.Name, Arguments: t.Arguments}
	}
	b, _ := json.Marshal(out)
	return b
}

// bufferStream holds an enforce route's stream until it is judged: a
// failing stream is never shown to the client and the next target is tried.
func (g *Gateway) bufferStream(ctx *fasthttp.RequestCtx, x *exchange, s *streamRelay, perr error) (attemptResult, *StatusError, schema.Verdict) {
	limit := s.t.Provider.MaxResponseBytes
	var all []byte
	for {
		all = append(all, s.out...)
		s.out = s.out[:0]
		if perr != nil || len(all) > limit {
			break
		}
		perr = s.pump()
	}
	complete := errors.Is(perr, io.EOF) && (s.done || s.acc.FinishReason() != "") && len(all) <= limit
	// discardUsage charges what upstream reported spending on a buffered
	// answer that is thrown away (issue 12.11).
	discardUsage := func() {
		if u, ok := s.acc.Usage(); ok {
			x.discardUsage(&x.rec.Attempts[len(x.rec.Attempts)-1], u)
		}
	}
	if !complete && g.pastDrain.Load() {
		// The drain deadline closed the upstream connection.
		discardUsage()
		s.close(false)
		x.rec.Attempts[len(x.rec.Attempts)-1].Error = "cut at the drain deadline"
		x.drainCut = true
		return resultRetry, errCutAtDrain, schema.Verdict{}
	}
	if !complete {
		if _, ok := s.acc.Usage(); ok {
			discardUsage()
		} else {
			s.chargeEstimate()
		}
		class, text := classify(perr)
		s.close(errors.Is(perr, io.EOF))
		s.t.Health.Failure()
		x.rec.Attempts[len(x.rec.Attempts)-1].Error = text
		if errors.Is(class, errUpstreamTimeout) {
			// Which deadline it was: "stalled" for a stream cut by
			// stream_max_duration misled (issue 12.15).
			cfg := s.up.cfg
			return resultRetry, statusErr(fasthttp.StatusGatewayTimeout, "server_error", "upstream_timeout", capture.OutcomeTimeout,
				"upstream "+s.t.Provider.Name+" "+strings.TrimPrefix(timeoutText(g.now(), s.end, cfg.StreamIdleTimeout.D(), cfg.StreamMaxDuration.D()), "upstream ")), schema.Verdict{}
		}
		return resultRetry, statusErr(fasthttp.StatusBadGateway, "server_error", "upstream_error", capture.OutcomeUpstreamError,
			"upstream "+s.t.Provider.Name+" stream broke: "+failureText(perr)), schema.Verdict{}
	}
	if !s.done && x.ep != epResponses {
		all = append(all, sseDone...)
	}
	v := x.contr.CheckStream(&s.acc)
	x.rec.Attempts[len(x.rec.Attempts)-1].Contract = v.Result
	if v.Result == capture.VerdictFail {
		discardUsage()
		s.close(true)
		return resultRetry, statusErr(fasthttp.StatusBadGateway, "server_error", "contract_violation", capture.OutcomeContractFail,
			"contract violation: "+strings.Join(v.Reasons, "; ")), v
	}
	if x.rec.TTFTMS == 0 {
		x.rec.TTFTMS = msSince(x.start, g.now())
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/event-stream; charset=utf-8")
	ctx.Response.Header.Set("cache-control", "no-cache")
	ctx.Response.Header.Set("x-cairn-contract", v.Result)
	ctx.Response.SetBodyRaw(all)
	s.close(true)
	x.rec.Contract = capture.Verdict{Verdict: v.Result, Reasons: v.Reasons}
	if u, ok := s.acc.Usage(); ok {
		x.rec.Usage = capture.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens, CachedTokens: u.CachedTokens}
	}
	x.rec.Raw = &capture.RawBodies{RequestBody: x.body, StreamContent: s.acc.Content(),
		StreamToolCalls: toolCallsJSON(s.acc.ToolCalls()), FinishReason: s.acc.FinishReason()}
	g.judgeStream(x, &s.acc, x.rec)
	return resultDone, nil, v
}

func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fasthttp.ErrBodyTooLarge
	}
	return b, nil
}
