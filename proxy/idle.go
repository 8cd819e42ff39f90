package proxy

import (
	"net"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// byteListener wraps the API listener so that the error handler can tell
// a connection that never sent a byte (an idle client, a port scan, a
// load balancer's TCP check) from a request that timed out half-read:
// the former is closed without a response or capture record and counted
// in cairn_idle_connections_closed_total, so that thousands of idle
// connections cannot drown the real evidence. The count is taken when
// such a connection is closed, whoever closes it: with ReduceMemoryUsage
// (issue 15) fasthttp reads a new connection's first byte itself and ends
// a silent one without calling the error handler.
type byteListener struct {
	net.Listener
	idle *atomic.Int64 // connections closed before sending a byte
}

func (l byteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &byteConn{Conn: c, idle: l.idle}, nil
}

// byteConn records whether any byte was read, and counts itself in idle
// when it is closed before the first. Safe for a Close from another
// goroutine (shutdown) while the serving goroutine reads.
type byteConn struct {
	net.Conn
	got    atomic.Bool
	closed atomic.Bool
	idle   *atomic.Int64
	ahead  readahead // readahead.go
}

func (c *byteConn) Read(p []byte) (int, error) {
	if n, err, ok := c.ahead.drain(p); ok {
		return n, err
	}
	var n int
	var err error
	if len(p) == 1 {
		n, err = c.ahead.fill(p, c.Conn)
	} else {
		n, err = c.Conn.Read(p)
	}
	if n > 0 && !c.got.Load() {
		c.got.Store(true)
	}
	return n, err
}

func (c *byteConn) Close() error {
	if c.closed.CompareAndSwap(false, true) && !c.got.Load() && c.idle != nil {
		c.idle.Add(1)
	}
	return c.Conn.Close()
}

// idleConn reports whether ctx's connection never sent a byte, and if so
// closes it (Close counts it).
func (g *Gateway) idleConn(ctx *fasthttp.RequestCtx) bool {
	c, ok := ctx.Conn().(*byteConn)
	if !ok || c.got.Load() {
		return false
	}
	_ = c.Close() // fasthttp's error response then goes nowhere
	return true
}
