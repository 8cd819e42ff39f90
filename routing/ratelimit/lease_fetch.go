package ratelimit

import (
	"context"
	"fmt"
	"time"
)

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
	l.goFetch(s, fetchLease)
}

// goFetch starts fetch(s, mode) unless the limiter is closed. s.mu is
// held.
func (l *Redis) goFetch(s *leaseState, mode int) {
	l.goMu.RLock()
	defer l.goMu.RUnlock()
	if l.closed {
		return
	}
	s.fetching = true
	l.wg.Add(1)
	go l.fetch(s, mode)
}

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
	// While Redis is hung a call is most likely run, if ever, after it
	// has given up: a grant would be lost (counted in Redis, spent by no
	// one) and debt counted twice (it is sent again). Such a call asks
	// for nothing and carries nothing: it only waits for an answer; the
	// lease and the debt follow the answer.
	probe := l.hung(now)
	switch {
	case probe:
	case mode == fetchReturn:
		retWin, retR, retT = s.win, s.reqs, s.toks
		s.reqs, s.toks = 0, 0
	case mode == fetchLease:
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
	var debtWin int64 = -1
	var debtR, debtT int
	if !probe {
		debtWin, debtR, debtT = s.outWin, s.outReqs, s.debtTok
		s.outReqs, s.debtTok = 0, 0
	}
	s.sendWin, s.sendR, s.sendT = debtWin, debtR, debtT
	s.mu.Unlock()

	// Silence counts from the send, not from the request that asked for
	// the call: on a starved gateway this goroutine may run late, and
	// Redis is not silent about what it was not yet asked.
	sent := time.Now()
	l.sil.begin(sent)
	ctx, cancel := context.WithTimeout(l.ctx, l.callTO)
	v, err := leaseScript.Run(ctx, l.c, []string{s.rkey},
		lim.RPM, lim.TPM, wantR, wantT, retWin, retR, retT, debtWin, debtR, debtT).Int64Slice()
	cancel()
	oc := outcome(err)
	l.sil.end(time.Now(), oc)
	if oc == callSilent {
		l.lm.unansweredReqs.Add(uint64(wantR))
		l.lm.unansweredToks.Add(uint64(wantT))
	}
	if err == nil && len(v) != 6 {
		err = fmt.Errorf("lease script returned %d values; want 6", len(v))
	}
	l.lm.calls.Add(1)

	s.mu.Lock()
	s.sendR, s.sendT = 0, 0
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
	// What was admitted beyond the slice while this call was in flight
	// (Redis silent or unreachable) is covered first by what it granted:
	// units Redis counted, so they are no longer debt.
	if s.outReqs > 0 && s.outWin == s.win {
		c := min(s.reqs, s.outReqs)
		s.reqs, s.outReqs = s.reqs-c, s.outReqs-c
	}
	if s.debtTok > 0 {
		c := min(s.toks, s.debtTok)
		s.toks, s.debtTok = s.toks-c, s.debtTok-c
	}
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
