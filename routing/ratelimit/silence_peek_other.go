//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || illumos)

package ratelimit

import (
	"errors"
	"syscall"
)

// canPeek is false: without a non-blocking peek there is no evidence that
// a silent Redis answered, so a silent Redis is never taken for a hung one
// before the breaker opens.
const canPeek = false

func sockOf(syscall.RawConn) (sockState, error) {
	return sockState{}, errors.New("peek unsupported")
}
