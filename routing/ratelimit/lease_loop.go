package ratelimit

import (
	"context"
	"fmt"
	"io"
	"time"
)

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
	return l.share(s, lim, now)
}

// share decides on the replica's share of what remained of the window when
// Redis last answered for the key (see outage), for a key whose slice has
// nothing left. The admitted requests are debt, reported to Redis with the
// next call that reaches it, or covered by what that call grants.
func (l *Redis) share(s *leaseState, lim Limits, now time.Time) Decision {
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
	// What this replica admitted beyond its slice: the debt not yet sent
	// and the debt in flight.
	usedR, usedT := s.outReqs, s.debtTok+s.sendT
	if s.sendWin == w {
		usedR += s.sendR
	}
	kind := ""
	switch {
	case lim.RPM > 0 && usedR >= shareR:
		kind = KindRequests
	case lim.TPM > 0 && usedT >= shareT:
		kind = KindTokens
	default:
		s.outReqs++
		usedR++
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
		d.LimitRequests, d.RemainingRequests, d.ResetRequests = lim.RPM, max(shareR-usedR, 0), reset
	}
	if lim.TPM > 0 {
		d.LimitTokens, d.RemainingTokens, d.ResetTokens = lim.TPM, max(shareT-usedT, 0), reset
	}
	if kind != "" {
		d.RetryAfter = max(reset, time.Millisecond)
	}
	return d
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
		if !l.br.isOpen() && !l.hung(now) { // a hung Redis is probed by the heartbeat
			l.keys.Range(func(_, v any) bool {
				s := v.(*leaseState)
				s.mu.Lock()
				s.expire(now, &l.lm)
				idle := now.Sub(s.lastUse) >= leaseIdle
				if !s.fetching && idle && (s.reqs > 0 || s.toks > 0 || s.debtTok > 0 || s.outReqs > 0) {
					mode := fetchSync
					if s.valid(now) && (s.reqs > 0 || s.toks > 0) {
						mode = fetchReturn
					}
					l.goFetch(s, mode)
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
	l.sil.begin(time.Now())
	ctx, cancel := context.WithTimeout(l.ctx, l.callTO)
	n, err := heartbeatScript.Run(ctx, l.c, []string{l.prefix + "replicas"}, l.id, heartbeatTTL.Milliseconds()).Int64()
	cancel()
	l.sil.end(time.Now(), outcome(err))
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
	deg, hung := 0, 0
	if l.br.isOpen() {
		deg = 1
	}
	if l.hung(time.Now()) {
		hung = 1
	}
	m := &l.lm
	fmt.Fprintf(w, "# HELP cairn_ratelimit_redis_errors_total Rate-limit calls to Redis that failed or missed their deadline.\n"+
		"# TYPE cairn_ratelimit_redis_errors_total counter\ncairn_ratelimit_redis_errors_total %d\n"+
		"# HELP cairn_ratelimit_degraded 1 while Redis is unreachable (breaker open) and limits are decided per replica.\n"+
		"# TYPE cairn_ratelimit_degraded gauge\ncairn_ratelimit_degraded %d\n"+
		"# HELP cairn_ratelimit_redis_hung 1 while a request has been out to Redis for redis_timeout and nothing came back on any connection: fail-open keys with an empty slice are decided as in an outage.\n"+
		"# TYPE cairn_ratelimit_redis_hung gauge\ncairn_ratelimit_redis_hung %d\n"+
		"# HELP cairn_ratelimit_replicas_live Replicas with a fresh heartbeat in Redis (0: not known yet).\n"+
		"# TYPE cairn_ratelimit_replicas_live gauge\ncairn_ratelimit_replicas_live %d\n"+
		"# HELP cairn_ratelimit_lease_calls_total Lease, return and debt calls to Redis.\n"+
		"# TYPE cairn_ratelimit_lease_calls_total counter\ncairn_ratelimit_lease_calls_total %d\n"+
		"# HELP cairn_ratelimit_lease_units_total Budget units leased from Redis, returned to it, expired unspent with their window (under-admission), and asked for by calls that got no answer (Redis may have granted them after the call gave up: under-admission), by kind.\n"+
		"# TYPE cairn_ratelimit_lease_units_total counter\n"+
		"cairn_ratelimit_lease_units_total{op=\"granted\",kind=\"requests\"} %d\ncairn_ratelimit_lease_units_total{op=\"granted\",kind=\"tokens\"} %d\n"+
		"cairn_ratelimit_lease_units_total{op=\"returned\",kind=\"requests\"} %d\ncairn_ratelimit_lease_units_total{op=\"returned\",kind=\"tokens\"} %d\n"+
		"cairn_ratelimit_lease_units_total{op=\"expired\",kind=\"requests\"} %d\ncairn_ratelimit_lease_units_total{op=\"expired\",kind=\"tokens\"} %d\n"+
		"cairn_ratelimit_lease_units_total{op=\"unanswered\",kind=\"requests\"} %d\ncairn_ratelimit_lease_units_total{op=\"unanswered\",kind=\"tokens\"} %d\n"+
		"# HELP cairn_ratelimit_lease_waits_total Requests that found their replica's slice empty and waited for a lease; refused: none came within the deadline.\n"+
		"# TYPE cairn_ratelimit_lease_waits_total counter\ncairn_ratelimit_lease_waits_total{result=\"waited\"} %d\ncairn_ratelimit_lease_waits_total{result=\"refused\"} %d\n"+
		"# HELP cairn_ratelimit_outage_admitted_total Requests admitted from a replica's share of the window while Redis was unreachable or hung.\n"+
		"# TYPE cairn_ratelimit_outage_admitted_total counter\ncairn_ratelimit_outage_admitted_total %d\n",
		l.errs.Load(), deg, hung, l.live.Load(), m.calls.Load(),
		m.grantedReqs.Load(), m.grantedToks.Load(), m.returnedReqs.Load(), m.returnedToks.Load(), m.expiredReqs.Load(), m.expiredToks.Load(),
		m.unansweredReqs.Load(), m.unansweredToks.Load(),
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
