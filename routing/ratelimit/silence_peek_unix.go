//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris || illumos

package ratelimit

import (
	"errors"
	"syscall"
)

const canPeek = true

// errPeerClosed is a connection Redis closed.
var errPeerClosed = errors.New("connection closed by redis")

// peekConn reports whether bytes wait unread in r's receive buffer,
// without reading them and without waiting: Control holds no read lock, so
// it runs beside a reader blocked on the same connection. An error means
// the connection is closed (by this side or by Redis).
func peekConn(r syscall.RawConn) (bool, error) {
	var pending bool
	var perr error
	if err := r.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
			pending = true
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		case err == nil:
			perr = errPeerClosed
		default:
			perr = err
		}
	}); err != nil {
		return false, err
	}
	return pending, perr
}
