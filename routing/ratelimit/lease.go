package ratelimit

import (
	"context"
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
	// Debt in flight: sent with the call in flight (requests of window
	// sendWin), counted toward the outage share until the call ends.
	sendWin      int64
	sendR, sendT int

	charged dedupRing
}

// leaseMetrics count what the leases do.
type leaseMetrics struct {
	calls, callErrs            atomic.Uint64
	grantedReqs, grantedToks   atomic.Uint64
	returnedReqs, returnedToks atomic.Uint64
	expiredReqs, expiredToks   atomic.Uint64
	// Units asked for by calls that got no answer: Redis may have granted
	// them after the call gave up (a hung Redis runs it when it resumes),
	// counted and spent by no one.
	unansweredReqs, unansweredToks atomic.Uint64
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
// request); a window Redis reports spent is refused at once until it ends.
// While Redis is unreachable the decision is local: see outage. So it is,
// for a key that is not FailClosed, as soon as Redis has answered nothing
// at all for Timeout although asked (hung, not slow: see hungAt), rather
// than after the breaker's three failed calls; a request whose own lease
// call went out late waits for that, at most 2 × Timeout. reqID is unused.
func (l *Redis) Check(_ context.Context, key string, lim Limits, _ string) Decision {
	if lim.RPM <= 0 && lim.TPM <= 0 {
		return Decision{Allowed: true}
	}
	s := l.state(key)
	var timer *time.Timer
	var deadline time.Time
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
		if !s.fetching {
			l.startFetch(s)
		}
		hungAt := time.Time{}
		if !lim.FailClosed {
			hungAt = l.hungAt(now)
		}
		if !hungAt.IsZero() && !now.Before(hungAt) {
			// Redis hung: the outage rule, before the breaker knows.
			d := l.share(s, lim, now)
			s.mu.Unlock()
			stopTimer(timer)
			if !d.Allowed {
				l.m.countLimited(key, d.Kind)
			}
			return d
		}
		if deadline.IsZero() {
			deadline = now.Add(l.timeout)
			l.lm.waits.Add(1)
		}
		// Past the deadline, a fail-open request waits on, at most one
		// more Timeout, for Redis to count as hung when the call it waits
		// for went out late or has not gone out yet (this process is
		// starved: see hungAt).
		past := !now.Before(deadline)
		if past && (lim.FailClosed || !now.Before(deadline.Add(l.timeout)) || hungAt.IsZero() && !s.fetching) {
			// Redis answers (the breaker is closed, and it is not silent)
			// but no lease came within the deadline: refuse rather than
			// guess.
			d := s.decision(lim, now, kind)
			d.Degraded, d.NoLease, d.RetryAfter = true, true, time.Second
			s.mu.Unlock()
			stopTimer(timer)
			l.lm.waitRefused.Add(1)
			l.m.countLimited(key, kind)
			return d
		}
		wake := deadline
		switch {
		case !hungAt.IsZero() && (hungAt.Before(wake) || past):
			wake = hungAt
		case past:
			wake = now.Add(l.timeout / 8) // the call is not out yet
		}
		wake = minTime(wake, deadline.Add(l.timeout))
		if timer == nil {
			timer = time.NewTimer(wake.Sub(now))
		} else {
			timer.Reset(wake.Sub(now))
		}
		ch := s.done
		s.waiting++
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
		}
		s.mu.Lock()
		s.waiting--
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// What a fetch does besides sending debt.
const (
	fetchLease  = iota // lease a slice sized to the key's rate and waiters
	fetchReturn        // return the whole slice (the key went idle)
	fetchSync          // only send debt
)
