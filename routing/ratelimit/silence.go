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
// proves nothing either way. A Redis that is merely slow answers some call
// within the wait deadline; one silent for longer (and with no answer
// waiting unread: see conns) is treated as down for the keys that may be
// decided without it (see Check). Safe for concurrent use.
type silence struct {
	mu      sync.Mutex
	pending int       // calls in flight
	from    time.Time // zero: nothing asked of Redis is unanswered
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
		s.from = now
	case outcome == callAnswered, outcome == callFailed && s.pending == 0:
		s.from = time.Time{}
	}
	s.mu.Unlock()
}

// since reports since when Redis has been silent; zero when it is not.
func (s *silence) since() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.from
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

// silentAt is when Redis, silent since from, may count as hung: after the
// longest a request waits for a lease. Zero when it is not silent.
func (l *Redis) silentAt() time.Time {
	from := l.sil.since()
	if from.IsZero() {
		return from
	}
	return from.Add(l.timeout)
}

// hung reports whether Redis counts as hung at now: silent for the wait
// deadline, with no answer waiting unread in any connection's socket (see
// conns). Without that evidence (a client not built by NewClient, or
// dialed before NewRedis; a platform without a non-blocking peek) a silent
// Redis is never taken for a hung one: the breaker decides, as before.
func (l *Redis) hung(now time.Time) bool {
	at := l.silentAt()
	if at.IsZero() || now.Before(at) {
		return false
	}
	waiting, known := l.conns.answerWaiting(now)
	return known && !waiting
}
