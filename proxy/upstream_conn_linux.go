package proxy

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerClosed reports, without blocking and without reading, whether the
// upstream closed or reset c while it sat in the pool: poll(2) with
// POLLRDHUP sees the peer's FIN even behind unread bytes (a TLS close_notify
// alert precedes it). On a plain HTTP connection unread bytes alone make it
// unusable too: an idle HTTP/1.1 connection carries nothing until the next
// request, so anything there (a 408 before the close) would be read as the
// next request's response. It reports false when it cannot tell.
func peerClosed(c net.Conn, isTLS bool) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		n, err := unix.Poll(fds, 0)
		if err != nil || n == 0 {
			return
		}
		r := fds[0].Revents
		closed = r&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 || (!isTLS && r&unix.POLLIN != 0)
	})
	return closed
}
