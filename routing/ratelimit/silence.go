package ratelimit

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// silence tells a hung Redis from a slow one sooner than the breaker can.
// A hung Redis (SIGSTOP, a stalled network path) keeps its connections
// open and answers nothing, so each call fails only at its deadline (1s)
// and the breaker opens after three of them; a replica whose slice runs
// out in between has nothing to spend. silence records since when Redis
// has been asked something and has answered nothing at all, on any call:
// a reply, even an error reply, ends the silence; a call that reaches its
// deadline without one does not; one that fails otherwise (refused, reset)
// proves nothing either way. A Redis that is merely slow answers within
// the wait deadline of a request leaving; one silent for longer, on the
// sockets' word (see hungAt and conns), is treated as down for the keys
// that may be decided without it (see Check). Safe for concurrent use.
type silence struct {
	mu      sync.Mutex
	pending int       // calls in flight
	from    time.Time // zero: nothing asked of Redis is unanswered
	proven  bool      // a call reached its deadline unanswered since from
}

// begin records a call sent at now.
func (s *silence) begin(now time.Time) {
	s.mu.Lock()
	s.pending++
	if s.from.IsZero() {
		s.from = now
	}
	s.mu.Unlock()
}

// Outcomes of a call, for end.
const (
	callAnswered = iota // Redis replied, even with an error reply
	callSilent          // the deadline passed with no reply
	callFailed          // it failed otherwise (refused, reset, no pooled connection)
)

// end records, at now, the outcome of a call begun earlier. A reply means
// Redis was alive at now: the calls still in flight are unanswered from now
// on. A deadline that passed keeps the silence going, even with no call
// left in flight, until Redis answers something. Any other failure is no
// evidence of silence: with no call left in flight, nothing is unanswered.
func (s *silence) end(now time.Time, outcome int) {
	s.mu.Lock()
	s.pending--
	switch {
	case outcome == callAnswered && s.pending > 0:
		s.from, s.proven = now, false
	case outcome == callAnswered, outcome == callFailed && s.pending == 0:
		s.from, s.proven = time.Time{}, false
	case outcome == callSilent:
		s.proven = true
	}
	s.mu.Unlock()
}

// since reports since when Redis has been silent (zero when it is not),
// and whether a call reached its deadline unanswered meanwhile.
func (s *silence) since() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.from, s.proven
}

// outcome classifies err, the result of a call to Redis.
func outcome(err error) int {
	var re redis.Error
	var ne net.Error
	switch {
	case err == nil || errors.As(err, &re):
		return callAnswered
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return callSilent
	}
	return callFailed
}

// hungAt is when Redis counts as hung (at or before now: it is); zero
// when it is not silent, or when its silence is no evidence. Redis counts
// as hung when it has been silent for Timeout since a request of the
// silence left (as the kernel saw it go: TCP_INFO), nothing came in on any
// socket since, and no reply waits unread; at once when a call of the
// silence reached its deadline unanswered. On a starved gateway, a request
// not yet out is not one Redis failed to answer: hungAt is then a time to
// look again. Without the evidence (a client not built by NewClient, or
// dialed before NewRedis; a platform without a non-blocking peek) a silent
// Redis is never taken for a hung one: the breaker decides, as before;
// without TCP_INFO the silence counts from the call on this process's
// clock.
func (l *Redis) hungAt(now time.Time) time.Time {
	from, proven := l.sil.since()
	if from.IsZero() {
		return from
	}
	if at := from.Add(l.timeout); now.Before(at) {
		return at
	}
	v, left, known := l.conns.verdict(now, from)
	switch {
	case !known || v == sockAnswered:
		return time.Time{}
	case proven:
		return from
	case v == sockNotOut:
		return now.Add(max(l.timeout/8, peekEvery))
	case v == sockOut:
		return left.Add(l.timeout)
	}
	return from.Add(l.timeout) // sockUnknown
}

// hung reports whether Redis counts as hung at now.
func (l *Redis) hung(now time.Time) bool {
	at := l.hungAt(now)
	return !at.IsZero() && !now.Before(at)
}
