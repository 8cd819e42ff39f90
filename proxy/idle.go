package proxy

import (
	"net"

	"github.com/valyala/fasthttp"
)

// byteListener wraps the API listener so that the error handler can tell
// a connection that never sent a byte (an idle client, a port scan, a
// load balancer's TCP check) from a request that timed out half-read:
// the former is closed without a response or capture record and counted
// in cairn_idle_connections_closed_total, so that thousands of idle
// connections cannot drown the real evidence.
type byteListener struct{ net.Listener }

func (l byteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &byteConn{Conn: c}, nil
}

// byteConn records whether any byte was read. It is read and written by
// the connection's serving goroutine only.
type byteConn struct {
	net.Conn
	got bool
}

func (c *byteConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.got = true
	}
	return n, err
}

// idleConn reports whether ctx's connection never sent a byte, and if so
// closes it and counts it.
func (g *Gateway) idleConn(ctx *fasthttp.RequestCtx) bool {
	c, ok := ctx.Conn().(*byteConn)
	if !ok || c.got {
		return false
	}
	g.idleClosed.Add(1)
	_ = c.Close() // fasthttp's error response then goes nowhere
	return true
}
