package proxy

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// connProbe asks the kernel, without blocking and without reading, whether
// the upstream closed or reset a pooled connection while it sat idle:
// poll(2) with POLLRDHUP sees the peer's FIN even behind unread bytes (a TLS
// close_notify alert precedes it). On a plain HTTP connection unread bytes
// alone make it unusable too: an idle HTTP/1.1 connection carries nothing
// until the next request, so anything there (a 408 before the close) would
// be read as the next request's response. Everything is built at dial time
// so that a probe allocates nothing. Used by one request at a time.
type connProbe struct {
	rc     syscall.RawConn
	isTLS  bool
	fds    [1]unix.PollFd
	closed bool
	poll   func(fd uintptr)
}

func newConnProbe(c net.Conn, isTLS bool) *connProbe {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &connProbe{rc: rc, isTLS: isTLS}
	p.poll = p.check
	return p
}

func (p *connProbe) check(fd uintptr) {
	p.fds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}
	n, err := unix.Poll(p.fds[:], 0)
	if err != nil || n == 0 {
		return
	}
	r := p.fds[0].Revents
	p.closed = r&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 || (!p.isTLS && r&unix.POLLIN != 0)
}

// peerClosed reports whether the upstream closed the connection (or sent
// unsolicited bytes on a plain one). It reports false when it cannot tell.
func (p *connProbe) peerClosed() bool {
	if p == nil {
		return false
	}
	p.closed = false
	if err := p.rc.Control(p.poll); err != nil {
		return false
	}
	return p.closed
}
