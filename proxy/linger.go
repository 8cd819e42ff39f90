package proxy

import (
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Lingering close (issue 14.2). When the gateway refuses a request before
// reading its body (413: the body is over server.max_body_bytes; 431), the
// client is usually still uploading. Closing the socket with unread bytes
// in its receive buffer makes the kernel send a reset, and clients then see
// ECONNRESET instead of the 413 (the Python SDK uploads the request three
// times). Like NGINX's lingering_close, the gateway sends its answer, shuts
// down its side and reads and discards what the client still sends, bounded
// in bytes and time, before closing.
// At most lingerMax connections linger at once (a flood of oversized
// requests must not pin unbounded goroutines and sockets); past it a
// connection is closed at once, as before.
const (
	lingerMaxBytes = 64 << 20
	lingerTimeout  = 10 * time.Second
	lingerMax      = 256
)

// lingerListener wraps the API listener so that every connection can be
// closed lingeringly.
type lingerListener struct {
	net.Listener
	slots chan struct{}
}

func newLingerListener(ln net.Listener) lingerListener {
	return lingerListener{Listener: ln, slots: make(chan struct{}, lingerMax)}
}

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c, slots: l.slots}, nil
}

// lingerConn is an API connection. Close is lingering once lingerOnClose was
// called, and plain otherwise.
type lingerConn struct {
	net.Conn
	slots  chan struct{}
	linger atomic.Bool
}

func (c *lingerConn) lingerOnClose() { c.linger.Store(true) }

// Close closes the connection; after lingerOnClose it returns at once and a
// goroutine, which ends within lingerTimeout, discards the client's
// remaining bytes before the real close.
func (c *lingerConn) Close() error {
	if !c.linger.CompareAndSwap(true, false) {
		return c.Conn.Close()
	}
	select {
	case c.slots <- struct{}{}:
	default:
		return c.Conn.Close()
	}
	go func() {
		defer func() { <-c.slots }()
		lingeringClose(c.Conn)
	}()
	return nil
}

func lingeringClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite() // our answer is written: send FIN after it
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.CopyN(io.Discard, c, lingerMaxBytes)
	_ = c.Close()
}
