//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || illumos

package ratelimit

import (
	"errors"
	"syscall"
)

const canPeek = true

// errPeerClosed is a connection Redis closed.
var errPeerClosed = errors.New("connection closed by redis")

// sockOf asks the kernel about r's socket without reading it and without
// waiting: Control holds no read lock, so it runs beside a reader blocked
// on the same connection. An error means the connection is closed (by
// this side or by Redis).
func sockOf(r syscall.RawConn) (sockState, error) {
	st := sockState{sent: -1, recv: -1}
	var perr error
	if err := r.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
			st.unread = true
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		case err == nil:
			perr = errPeerClosed
			return
		default:
			perr = err
			return
		}
		st.sent, st.recv = tcpTimes(fd)
	}); err != nil {
		return st, err
	}
	return st, perr
}
