package ratelimit

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Leases (issue 15). Redis holds, per key and one-minute window (Redis's
// clock), r: request units leased and t: token units leased or charged.
// A replica asks for a slice, the script grants at most what is left of
// the limit, and the replica spends the slice locally with no Redis call
// per request. Hence, while Redis is reachable:
//
//   - requests: the replicas together admit at most RPM per window,
//     exactly, however slow Redis or the machine is;
//   - under-admission: units a replica holds but does not spend, at most
//     what it holds for the key (≤ 1.5 × the lease cap + 1, the cap being
//     ceil(limit / (4 × live replicas))), returned after leaseIdle without
//     use or lost when the window ends (cairn_ratelimit_lease_expired_total);
//   - tokens: each admitted request reserves the key's running mean usage
//     from the token slice; its actual usage settles the reservation when
//     it finishes (the difference goes back to the slice, or is charged to
//     Redis as debt). The window's tokens exceed TPM by at most the sum,
//     over the requests in flight when its last tokens were leased, of
//     what each used beyond its reservation; usage at the mean adds 0.
const (
	// leaseTarget is how long a slice should last at the current rate:
	// chunks double while refills come faster than leaseTarget/2 and halve
	// when slower than 2 × leaseTarget.
	leaseTarget = time.Second
	// leaseIdle is how long a key may go unused before its slice goes back
	// to Redis for the other replicas.
	leaseIdle = time.Second
	// probeEvery is how often an exhausted window is asked again (another
	// replica may have returned units), and how often an open breaker
	// probes Redis.
	probeEvery = 500 * time.Millisecond
	// tick is the background loop's period.
	tick = 100 * time.Millisecond
	// heartbeatEvery and heartbeatTTL define a live replica.
	heartbeatEvery = 2 * time.Second
	heartbeatTTL   = 10 * time.Second
)

// leaseScript grants, returns and charges budget for one key in the
// current window, atomically, on Redis's clock. KEYS[1] is the key's hash
// {w: window, r: request units, t: token units}. ARGV: rpm, tpm (0:
// unlimited), wanted requests, wanted tokens, the window of returned units
// (ignored unless current), returned requests, returned tokens, the window
// of request debt (admitted locally during an outage; ignored unless
// current), request debt, token debt (always charged to the current window,
// as a charge is). Returns {granted requests, granted tokens, r, t, ms left
// in the window, window}. The hash carries a TTL: window end plus a minute.
var leaseScript = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local win = math.floor(now / 60000)
local reset = (win + 1) * 60000 - now
local v = redis.call('HMGET', KEYS[1], 'w', 'r', 't')
local r, t = 0, 0
if tonumber(v[1]) == win then
  r = tonumber(v[2]) or 0
  t = tonumber(v[3]) or 0
end
if tonumber(ARGV[5]) == win then
  r = math.max(r - tonumber(ARGV[6]), 0)
  t = math.max(t - tonumber(ARGV[7]), 0)
end
if tonumber(ARGV[8]) == win then
  r = r + tonumber(ARGV[9])
end
t = t + tonumber(ARGV[10])
local gr, gt = 0, 0
if rpm > 0 then gr = math.max(math.min(tonumber(ARGV[3]), rpm - r), 0) end
if tpm > 0 then gt = math.max(math.min(tonumber(ARGV[4]), tpm - t), 0) end
r = r + gr
t = t + gt
redis.call('HSET', KEYS[1], 'w', win, 'r', r, 't', t)
redis.call('PEXPIRE', KEYS[1], reset + 60000)
return {gr, gt, r, t, reset, win}
`)

// heartbeatScript marks ARGV[1] live in the sorted set KEYS[1], forgets
// replicas silent for ARGV[2] ms and returns how many are live.
var heartbeatScript = redis.NewScript(`
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
`)

// Reservation is the token budget an admitted request holds until its
// usage is charged. Pass it back to Charge; the zero value holds nothing.
type Reservation struct {
	Tokens int
	win    int64
}

// leaseState is one key's slice on this replica. Fields are guarded by mu.
type leaseState struct {
	name, rkey string

	mu  sync.Mutex
	lim Limits // the limits of the last Check

	// The slice: units of Redis window win, spendable until end (this
	// replica's clock, conservatively before the window's end in Redis).
	seen         bool
	win          int64
	end          time.Time
	reqs, toks   int
	seenR, seenT int // Redis's counts after the last call in win

	exhReq, exhTok bool      // Redis had nothing left to grant
	exhAt          time.Time // when it said so

	reqChunk, tokChunk int
	lastFetch          time.Time
	fetching           bool
	done               chan struct{} // closed when the fetch in flight ends
	waiting            int
	lastUse            time.Time

	meanTok float64 // running mean of tokens per charged request
	debtTok int     // tokens charged beyond reservations, not yet in Redis
	resvTok int     // tokens reserved by admitted requests of win, not yet charged

	// Outage accounting: window outWin, requests admitted beyond the
	// slice while Redis was unreachable (reported as debt afterwards).
	outWin  int64
	outReqs int

	charged dedupRing
}

// leaseMetrics count what the leases do.
type leaseMetrics struct {
	calls, callErrs                atomic.Uint64
	grantedReqs, grantedToks       atomic.Uint64
	returnedReqs, returnedToks     atomic.Uint64
	expiredReqs, expiredToks       atomic.Uint64
	waits, waitRefused, outageAdms atomic.Uint64
}

func (l *Redis) state(key string) *leaseState {
	if v, ok := l.keys.Load(key); ok {
		return v.(*leaseState)
	}
	// The braces are a Redis Cluster hash tag.
	s := &leaseState{name: key, rkey: l.prefix + "{" + key + "}", done: make(chan struct{})}
	v, _ := l.keys.LoadOrStore(key, s)
	return v.(*leaseState)
}

// liveReplicas is the replica count leases and outage shares divide by.
func (l *Redis) liveReplicas() int {
	if n := int(l.live.Load()); n > 0 {
		return n
	}
	return l.replicas
}

// valid reports whether the slice can be spent at now.
func (s *leaseState) valid(now time.Time) bool { return s.seen && now.Before(s.end) }

// expire drops the units of a window that has ended: they were never
// spent (under-admission, counted).
func (s *leaseState) expire(now time.Time, m *leaseMetrics) {
	if !s.seen || now.Before(s.end) {
		return
	}
	if s.reqs > 0 || s.toks > 0 {
		m.expiredReqs.Add(uint64(s.reqs))
		m.expiredToks.Add(uint64(s.toks))
		s.reqs, s.toks = 0, 0
	}
	s.resvTok = 0
	s.exhReq, s.exhTok = false, false
}

// windowAt is the window now falls in: the slice's while it lasts, then
// counted on from its end (Redis's windows on this replica's clock).
func (s *leaseState) windowAt(now time.Time) int64 {
	if !s.seen {
		return now.UnixNano() / int64(Window)
	}
	if now.Before(s.end) {
		return s.win
	}
	return s.win + 1 + int64(now.Sub(s.end)/Window)
}

func (s *leaseState) est() int { return max(1, int(s.meanTok+0.5)) }

// take spends one request unit and reserves the mean usage in tokens. It
// reports the dimension that is empty when it cannot.
func (s *leaseState) take(lim Limits, now time.Time) (ok bool, kind string, res Reservation) {
	if !s.valid(now) {
		return false, KindRequests, res
	}
	if lim.RPM > 0 && s.reqs <= 0 {
		return false, KindRequests, res
	}
	if lim.TPM > 0 && s.toks <= 0 {
		return false, KindTokens, res
	}
	if lim.RPM > 0 {
		s.reqs--
	}
	if lim.TPM > 0 {
		res = Reservation{Tokens: min(s.est(), s.toks), win: s.win}
		s.toks -= res.Tokens
		s.resvTok += res.Tokens
	}
	return true, "", res
}

// exhausted reports whether Redis recently said the dimension kind has
// nothing left in this window.
func (s *leaseState) exhausted(kind string, now time.Time) bool {
	if now.Sub(s.exhAt) >= probeEvery {
		return false
	}
	return (kind == KindRequests && s.exhReq) || (kind == KindTokens && s.exhTok)
}

// decision reports the window as this replica knows it: what Redis had
// not leased at the last call plus the units held here.
func (s *leaseState) decision(lim Limits, now time.Time, kind string) Decision {
	d := Decision{Allowed: kind == "", Kind: kind}
	reset := time.Duration(0)
	if s.valid(now) {
		reset = s.end.Sub(now)
	} else {
		reset = Window - time.Duration(now.UnixNano()%int64(Window))
	}
	if lim.RPM > 0 {
		d.LimitRequests = lim.RPM
		if s.valid(now) {
			d.RemainingRequests = max(lim.RPM-s.seenR, 0) + s.reqs
		} else {
			d.RemainingRequests = lim.RPM
		}
		d.ResetRequests = reset
	}
	if lim.TPM > 0 {
		d.LimitTokens = lim.TPM
		if s.valid(now) {
			d.RemainingTokens = max(lim.TPM-s.seenT, 0) + s.toks
		} else {
			d.RemainingTokens = lim.TPM
		}
		d.ResetTokens = reset
	}
	if !d.Allowed {
		d.RetryAfter = max(reset, time.Millisecond)
	}
	return d
}

// Check admits one request of key if this replica holds a unit of the
// key's current window (and, with a TPM, tokens to reserve), spending it
// locally. A replica with no units for the key waits for a lease, at most
// Timeout, and is refused (retry-after 1s) rather than admitted on a guess
// when none arrives (units that come later stay in the slice for the next
// request); a window Redis reports spent is refused at once
// until it ends. While Redis is unreachable the decision is local: see
// outage. reqID is unused.
func (l *Redis) Check(_ context.Context, key string, lim Limits, _ string) Decision {
	if lim.RPM <= 0 && lim.TPM <= 0 {
		return Decision{Allowed: true}
	}
	s := l.state(key)
	var timer *time.Timer
	timedOut := false
	s.mu.Lock()
	for {
		now := time.Now()
		s.lim = lim
		s.lastUse = now
		s.expire(now, &l.lm)
		if l.br.isOpen() {
			d := l.outage(s, lim, now)
			s.mu.Unlock()
			stopTimer(timer)
			if !d.Allowed {
				l.m.countLimited(key, d.Kind)
			}
			return d
		}
		ok, kind, res := s.take(lim, now)
		if ok {
			l.prefetch(s, lim, now)
			d := s.decision(lim, now, "")
			d.Reservation = res
			s.mu.Unlock()
			stopTimer(timer)
			return d
		}
		if s.valid(now) && s.exhausted(kind, now) {
			d := s.decision(lim, now, kind)
			s.mu.Unlock()
			stopTimer(timer)
			l.m.countLimited(key, kind)
			return d
		}
		if timedOut {
			// Redis is reachable (the breaker is closed) but no lease came
			// within the deadline: refuse rather than guess.
			d := s.decision(lim, now, kind)
			d.Degraded, d.NoLease, d.RetryAfter = true, true, time.Second
			s.mu.Unlock()
			l.lm.waitRefused.Add(1)
			l.m.countLimited(key, kind)
			return d
		}
		if timer == nil {
			timer = time.NewTimer(l.timeout)
			l.lm.waits.Add(1)
		}
		if !s.fetching {
			l.startFetch(s)
		}
		ch := s.done
		s.waiting++
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			timedOut = true
		}
		s.mu.Lock()
		s.waiting--
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// outage decides while Redis is unreachable. The replica spends what it
// still holds of the window (units Redis already counted); past that a
// fail_closed key is refused, and another admits its share of what Redis
// had not yet granted when this replica last saw it, split by the live
// replicas it knew of: the replicas together stay within the window's
// limit, plus what other replicas leased after this one's last call. In a
// window Redis never saw, the share is of the whole limit. Tokens: the
// share of what remained, measured by the debt charged since.
func (l *Redis) outage(s *leaseState, lim Limits, now time.Time) Decision {
	if ok, _, res := s.take(lim, now); ok {
		// Units Redis granted before it went away: counted, so exact.
		d := s.decision(lim, now, "")
		d.Reservation, d.Degraded = res, true
		return d
	}
	if lim.FailClosed {
		d := Decision{
			Kind: KindRequests, Degraded: true,
			LimitRequests: lim.RPM, LimitTokens: lim.TPM,
			RetryAfter: time.Second, ResetRequests: time.Second,
		}
		if lim.TPM > 0 {
			d.ResetTokens = time.Second
		}
		return d
	}
	w := s.windowAt(now)
	if w != s.outWin {
		s.outWin, s.outReqs = w, 0
	}
	n := l.liveReplicas()
	remR, remT := lim.RPM, lim.TPM
	if s.seen && w == s.win {
		remR, remT = max(lim.RPM-s.seenR, 0), max(lim.TPM-s.seenT, 0)
	}
	shareR, shareT := remR/n, remT/n
	kind := ""
	switch {
	case lim.RPM > 0 && s.outReqs >= shareR:
		kind = KindRequests
	case lim.TPM > 0 && s.debtTok >= shareT:
		kind = KindTokens
	default:
		s.outReqs++
		l.lm.outageAdms.Add(1)
	}
	d := Decision{Allowed: kind == "", Kind: kind, Degraded: true}
	reset := Window - time.Duration(now.UnixNano()%int64(Window))
	if s.seen && w == s.win {
		reset = s.end.Sub(now)
	} else if s.seen {
		reset = Window - now.Sub(s.end)%Window
	}
	if lim.RPM > 0 {
		d.LimitRequests, d.RemainingRequests, d.ResetRequests = lim.RPM, max(shareR-s.outReqs, 0), reset
	}
	if lim.TPM > 0 {
		d.LimitTokens, d.RemainingTokens, d.ResetTokens = lim.TPM, max(shareT-s.debtTok, 0), reset
	}
	if kind != "" {
		d.RetryAfter = max(reset, time.Millisecond)
	}
	return d
}

// prefetch starts a lease before the slice runs out, so steady traffic
// never waits: when half a chunk or less is left.
func (l *Redis) prefetch(s *leaseState, lim Limits, now time.Time) {
	if s.fetching {
		return
	}
	low := (lim.RPM > 0 && s.reqs <= s.reqChunk/2 && !s.exhausted(KindRequests, now)) ||
		(lim.TPM > 0 && s.toks <= s.tokChunk/2 && !s.exhausted(KindTokens, now))
	if low {
		l.startFetch(s)
	}
}

// startFetch runs one lease call for s in the background. s.mu is held.
func (l *Redis) startFetch(s *leaseState) {
	l.goMu.RLock()
	defer l.goMu.RUnlock()
	if l.closed {
		return
	}
	s.fetching = true
	l.wg.Add(1)
	go l.fetch(s, fetchLease)
}

// What a fetch does besides sending debt.
const (
	fetchLease  = iota // lease a slice sized to the key's rate and waiters
	fetchReturn        // return the whole slice (the key went idle)
	fetchSync          // only send debt
)

// fetch makes one call for s, by mode: a lease sized to the key's rate
// (and to the requests waiting), the return of the whole slice, or neither;
// each sends the debt. It wakes the waiters when done.
func (l *Redis) fetch(s *leaseState, mode int) {
	defer l.wg.Done()
	s.mu.Lock()
	lim := s.lim
	now := time.Now()
	n := l.liveReplicas()
	capR := max(1, (lim.RPM+4*n-1)/(4*n))
	capT := max(1, (lim.TPM+4*n-1)/(4*n))
	if s.reqChunk == 0 {
		s.reqChunk, s.tokChunk = max(1, capR/4), capT
	}
	var wantR, wantT, retR, retT int
	var retWin int64 = -1
	switch mode {
	case fetchReturn:
		retWin, retR, retT = s.win, s.reqs, s.toks
		s.reqs, s.toks = 0, 0
	case fetchLease:
		if !s.lastFetch.IsZero() {
			switch since := now.Sub(s.lastFetch); {
			case since < leaseTarget/2:
				s.reqChunk, s.tokChunk = min(s.reqChunk*2, capR), min(s.tokChunk*2, capT)
			case since > 2*leaseTarget:
				s.reqChunk, s.tokChunk = max(s.reqChunk/2, 1), max(s.tokChunk/2, 1)
			}
		}
		s.reqChunk, s.tokChunk = min(s.reqChunk, capR), min(s.tokChunk, capT)
		s.lastFetch = now
		if lim.RPM > 0 {
			wantR = max(s.reqChunk, s.waiting)
		}
		if lim.TPM > 0 {
			wantT = max(s.tokChunk, s.est()*s.waiting)
		}
	}
	debtWin, debtR, debtT := s.outWin, s.outReqs, s.debtTok
	s.outReqs, s.debtTok = 0, 0
	s.mu.Unlock()

	sent := time.Now()
	ctx, cancel := context.WithTimeout(l.ctx, l.callTO)
	v, err := leaseScript.Run(ctx, l.c, []string{s.rkey},
		lim.RPM, lim.TPM, wantR, wantT, retWin, retR, retT, debtWin, debtR, debtT).Int64Slice()
	cancel()
	if err == nil && len(v) != 6 {
		err = fmt.Errorf("lease script returned %d values; want 6", len(v))
	}
	l.lm.calls.Add(1)

	s.mu.Lock()
	defer func() {
		s.fetching = false
		close(s.done)
		s.done = make(chan struct{})
		s.mu.Unlock()
	}()
	if err != nil {
		// Debt goes again with the next call (a call that timed out after
		// Redis ran it counts it twice: conservative). Returned units are
		// not restored: Redis may have taken them back.
		s.debtTok += debtT
		if s.outWin == debtWin {
			s.outReqs += debtR
		}
		l.failed(err)
		return
	}
	l.ok()
	if mode == fetchReturn {
		l.lm.returnedReqs.Add(uint64(retR))
		l.lm.returnedToks.Add(uint64(retT))
	}
	gr, gt, r, t, reset, win := int(v[0]), int(v[1]), int(v[2]), int(v[3]), time.Duration(v[4])*time.Millisecond, v[5]
	l.lm.grantedReqs.Add(uint64(gr))
	l.lm.grantedToks.Add(uint64(gt))
	// sent+reset is never after the window's end in Redis: Redis read its
	// clock after sent.
	end := sent.Add(reset)
	if !s.seen || win != s.win {
		s.expire(end, &l.lm) // units of an older window are void
		s.reqs, s.toks, s.resvTok = 0, 0, 0
		s.win, s.end, s.seen = win, end, true
		s.exhReq, s.exhTok = false, false
	} else if end.After(s.end) {
		s.end = end
	}
	s.reqs += gr
	s.toks += gt
	s.seenR, s.seenT = r, t
	done := time.Now()
	if lim.RPM > 0 && gr < wantR {
		s.exhReq, s.exhAt = true, done
	}
	if lim.TPM > 0 && gt < wantT {
		s.exhTok, s.exhAt = true, done
	}
}

// Charge settles a finished request's token usage against its
// reservation, once per reqID (remembered for two minutes, see
// dedupRing; an empty reqID is never deduplicated): unused reserved tokens
// go back to the slice, usage beyond it is charged to Redis as debt in the
// background. A reservation of a window that has ended is void and the
// usage is charged to the current window, as a charge always was. It does
// nothing when TPM is 0.
func (l *Redis) Charge(_ context.Context, key string, lim Limits, reqID string, tokens int, res Reservation) {
	if lim.TPM <= 0 || (tokens <= 0 && res.Tokens <= 0) {
		return
	}
	tokens = max(tokens, 0)
	s := l.state(key)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if reqID != "" && s.charged.seen(reqID, now, &l.m.dedupDropped) {
		return
	}
	if tokens > 0 {
		if s.meanTok == 0 {
			s.meanTok = float64(tokens)
		} else {
			s.meanTok += (float64(tokens) - s.meanTok) / 16
		}
	}
	s.expire(now, &l.lm)
	if res.Tokens > 0 && s.valid(now) && res.win == s.win {
		s.resvTok -= res.Tokens
		s.toks += res.Tokens - tokens
		if s.toks < 0 {
			s.debtTok += -s.toks
			s.toks = 0
		}
	} else {
		s.debtTok += tokens
	}
	if s.debtTok > 0 && !s.fetching && !l.br.isOpen() {
		s.lim = lim
		l.startFetch(s)
	}
}

// TokensCharged is the key's token usage in the current window as this
// replica knows it: what Redis counted at its last call, less the slice
// it holds and the reservations of requests in flight, plus the debt not
// yet sent. With one replica and no call in flight it is exact.
func (l *Redis) TokensCharged(key string) int {
	s := l.state(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.expire(now, &l.lm)
	if !s.valid(now) {
		return s.debtTok
	}
	return s.seenT - s.toks - s.resvTok + s.debtTok
}

// loop runs until Close: heartbeats, probes of an open breaker, and the
// return of idle slices and unsent debt.
func (l *Redis) loop() {
	defer l.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	var lastBeat, lastProbe time.Time
	for {
		now := time.Now()
		switch {
		case l.br.isOpen():
			if now.Sub(lastProbe) >= probeEvery {
				lastProbe = now
				l.heartbeat()
			}
		case now.Sub(lastBeat) >= heartbeatEvery:
			lastBeat = now
			l.heartbeat()
		}
		if !l.br.isOpen() {
			l.keys.Range(func(_, v any) bool {
				s := v.(*leaseState)
				s.mu.Lock()
				s.expire(now, &l.lm)
				idle := now.Sub(s.lastUse) >= leaseIdle
				if !s.fetching && idle && (s.reqs > 0 || s.toks > 0 || s.debtTok > 0 || s.outReqs > 0) {
					l.goMu.RLock()
					if !l.closed {
						s.fetching = true
						l.wg.Add(1)
						mode := fetchSync
						if s.valid(now) && (s.reqs > 0 || s.toks > 0) {
							mode = fetchReturn
						}
						go l.fetch(s, mode)
					}
					l.goMu.RUnlock()
				}
				s.mu.Unlock()
				return true
			})
		}
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeat marks this replica live and reads how many are.
func (l *Redis) heartbeat() {
	ctx, cancel := context.WithTimeout(l.ctx, l.callTO)
	n, err := heartbeatScript.Run(ctx, l.c, []string{l.prefix + "replicas"}, l.id, heartbeatTTL.Milliseconds()).Int64()
	cancel()
	if err != nil {
		l.failed(err)
		return
	}
	l.ok()
	l.live.Store(int32(max(n, 1)))
}

// Close returns every slice this replica holds to Redis (best effort,
// within Timeout), leaves the heartbeat set and stops the background
// work. The limiter must not be used afterwards.
func (l *Redis) Close() {
	l.goMu.Lock()
	if l.closed {
		l.goMu.Unlock()
		return
	}
	l.closed = true
	l.goMu.Unlock()
	l.cancel()
	l.wg.Wait()
	if l.br.isOpen() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.callTO)
	defer cancel()
	now := time.Now()
	l.keys.Range(func(_, v any) bool {
		s := v.(*leaseState)
		s.mu.Lock()
		retR, retT, win, valid := s.reqs, s.toks, s.win, s.valid(now)
		debtWin, debtR, debtT := s.outWin, s.outReqs, s.debtTok
		s.reqs, s.toks, s.outReqs, s.debtTok = 0, 0, 0, 0
		lim := s.lim
		s.mu.Unlock()
		if !valid {
			retR, retT, win = 0, 0, -1
		}
		if retR+retT+debtR+debtT == 0 {
			return true
		}
		if leaseScript.Run(ctx, l.c, []string{s.rkey}, lim.RPM, lim.TPM, 0, 0, win, retR, retT, debtWin, debtR, debtT).Err() == nil {
			l.lm.returnedReqs.Add(uint64(retR))
			l.lm.returnedToks.Add(uint64(retT))
		}
		return ctx.Err() == nil
	})
	_ = l.c.ZRem(ctx, l.prefix+"replicas", l.id).Err()
}

// WritePrometheus writes the limiter's series in Prometheus text format:
// refusals, Redis errors, the breaker, live replicas and the leases.
func (l *Redis) WritePrometheus(w io.Writer) {
	l.m.writePrometheus(w)
	deg := 0
	if l.br.isOpen() {
		deg = 1
	}
	m := &l.lm
	fmt.Fprintf(w, "# HELP cairn_ratelimit_redis_errors_total Rate-limit calls to Redis that failed or missed their deadline.\n"+
		"# TYPE cairn_ratelimit_redis_errors_total counter\ncairn_ratelimit_redis_errors_total %d\n"+
		"# HELP cairn_ratelimit_degraded 1 while Redis is unreachable (breaker open) and limits are decided per replica.\n"+
		"# TYPE cairn_ratelimit_degraded gauge\ncairn_ratelimit_degraded %d\n"+
		"# HELP cairn_ratelimit_replicas_live Replicas with a fresh heartbeat in Redis (0: not known yet).\n"+
		"# TYPE cairn_ratelimit_replicas_live gauge\ncairn_ratelimit_replicas_live %d\n"+
		"# HELP cairn_ratelimit_lease_calls_total Lease, return and debt calls to Redis.\n"+
		"# TYPE cairn_ratelimit_lease_calls_total counter\ncairn_ratelimit_lease_calls_total %d\n"+
		"# HELP cairn_ratelimit_lease_units_total Budget units leased from Redis, returned to it, and expired unspent with their window (under-admission), by kind.\n"+
		"# TYPE cairn_ratelimit_lease_units_total counter\n"+
		"cairn_ratelimit_lease_units_total{op=\"granted\",kind=\"requests\"} %d\ncairn_ratelimit_lease_units_total{op=\"granted\",kind=\"tokens\"} %d\n"+
		"cairn_ratelimit_lease_units_total{op=\"returned\",kind=\"requests\"} %d\ncairn_ratelimit_lease_units_total{op=\"returned\",kind=\"tokens\"} %d\n"+
		"cairn_ratelimit_lease_units_total{op=\"expired\",kind=\"requests\"} %d\ncairn_ratelimit_lease_units_total{op=\"expired\",kind=\"tokens\"} %d\n"+
		"# HELP cairn_ratelimit_lease_waits_total Requests that found their replica's slice empty and waited for a lease; refused: none came within the deadline.\n"+
		"# TYPE cairn_ratelimit_lease_waits_total counter\ncairn_ratelimit_lease_waits_total{result=\"waited\"} %d\ncairn_ratelimit_lease_waits_total{result=\"refused\"} %d\n"+
		"# HELP cairn_ratelimit_outage_admitted_total Requests admitted from a replica's share of the window while Redis was unreachable.\n"+
		"# TYPE cairn_ratelimit_outage_admitted_total counter\ncairn_ratelimit_outage_admitted_total %d\n",
		l.errs.Load(), deg, l.live.Load(), m.calls.Load(),
		m.grantedReqs.Load(), m.grantedToks.Load(), m.returnedReqs.Load(), m.returnedToks.Load(), m.expiredReqs.Load(), m.expiredToks.Load(),
		m.waits.Load(), m.waitRefused.Load(), m.outageAdms.Load())
}

// Degraded reports whether Redis is treated as unreachable.
func (l *Redis) Degraded() bool { return l.br.isOpen() }

// failed counts a Redis failure, feeds the breaker and logs at most once
// per logEvery. A failure caused by Close is not Redis's fault.
func (l *Redis) failed(err error) {
	if l.ctx.Err() != nil {
		return
	}
	n := l.errs.Add(1)
	l.lm.callErrs.Add(1)
	opened := l.br.failure()
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if !opened && (now-last < int64(logEvery) || !l.lastLog.CompareAndSwap(last, now)) {
		l.suppressed.Add(1)
		return
	}
	l.lastLog.Store(now)
	l.log.Warn("rate limiter: redis call failed; after 3 in a row each replica admits its share of what remains of the window, fail_closed keys are refused",
		"err", err.Error(), "unreachable", l.br.isOpen(), "live_replicas", l.liveReplicas(), "errors_total", n, "suppressed", l.suppressed.Swap(0))
}

// ok closes the breaker after a successful call.
func (l *Redis) ok() {
	if l.br.success() {
		l.log.Info("rate limiter: redis reachable again, shared limits resumed", "errors_total", l.errs.Load())
	}
}
