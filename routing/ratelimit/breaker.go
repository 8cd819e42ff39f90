package ratelimit

import "sync/atomic"

// breakerFailures is how many Redis calls in a row must fail before the
// limiter treats Redis as unreachable. A call that is slow but answers
// within the deadline is a success: only failures count.
const breakerFailures = 3

// breaker decides whether Redis is unreachable: it opens after
// breakerFailures consecutive failed calls (refused connections fail at
// once, a hung Redis fails at each call's deadline) and closes on the
// first call that succeeds. Safe for concurrent use.
type breaker struct {
	fails atomic.Int32
	open  atomic.Bool
}

// success records a call that answered; it reports whether the breaker
// was open.
func (b *breaker) success() (wasOpen bool) {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
	return b.open.Load() && b.open.CompareAndSwap(true, false)
}

// failure records a failed call; it reports whether this failure opened
// the breaker.
func (b *breaker) failure() (opened bool) {
	if b.fails.Add(1) < breakerFailures {
		return false
	}
	return !b.open.Load() && b.open.CompareAndSwap(false, true)
}

// isOpen reports whether Redis is treated as unreachable.
func (b *breaker) isOpen() bool { return b.open.Load() }
