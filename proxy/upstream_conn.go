package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// errStaleConn is returned by upstreamConn.Write, before a single byte of a
// request is written, when a pooled connection turns out to be unusable:
// the upstream closed it while it sat idle (a Node server's 5 s keep-alive,
// an upstream that restarted), or it has been idle past the timeout the
// upstream announced in Keep-Alive. The upstream cannot have received the
// request, so the clients' RetryIfErr resends it on another connection
// (issue 14.1). Any other failure is never resent by the client: once a
// request byte may have reached the upstream, only the route's fallbacks
// decide, and only before the first byte reached our client.
var errStaleConn = errors.New("pooled upstream connection was closed while idle")

// maxStaleResends bounds the transparent resends of one request. Each one
// costs a poll(2) on a pooled connection and no network round trip; after
// an upstream restart every pooled connection is stale, so the bound is
// generous. The request's own timeout still bounds the whole call.
const maxStaleResends = 256

// retryStale is the clients' RetryIfErr: resend only when nothing of the
// request was written (errStaleConn).
func (u *upstream) retryStale(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	if !errors.Is(err, errStaleConn) {
		return false, false
	}
	u.stale.Add(1)
	return false, true
}

// writeUpstreamMetrics writes the per-provider stale connection resends.
func (g *Gateway) writeUpstreamMetrics(w io.Writer) {
	ups := *g.upstreams.Load()
	names := make([]string, 0, len(ups))
	for n := range ups {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "# HELP cairn_upstream_stale_resends_total Requests resent on a fresh connection because their pooled one was closed by the provider or idle past its keep-alive before a byte was written.\n# TYPE cairn_upstream_stale_resends_total counter\n")
	for _, n := range names {
		fmt.Fprintf(w, "cairn_upstream_stale_resends_total{provider=%q} %d\n", n, ups[n].stale.Load())
	}
}

// connRegistry tracks the upstream connections by local address, so that
// once a response's headers arrived the gateway can find the connection
// that carried it: to switch a stream from the first-byte deadline to a
// per-read idle deadline (fasthttp keeps the request's deadline on the
// connection while the body streams, which would cut every stream at the
// first-byte timeout), and to note the upstream's Keep-Alive timeout.
type connRegistry struct {
	m      sync.Map    // local addr string -> *upstreamConn
	closed atomic.Bool // closeAll ran: connections dialed later are closed at once
}

func (r *connRegistry) wrap(c net.Conn, isTLS bool) net.Conn {
	uc := &upstreamConn{Conn: c, reg: r, key: c.LocalAddr().String(), probe: newConnProbe(c, isTLS)}
	r.m.Store(uc.key, uc)
	if r.closed.Load() {
		_ = uc.Close() // dialed after the drain deadline: fails its request at once
	}
	return uc
}

// closeAll closes every registered connection, in use or idle, and every
// one dialed later (at the drain deadline: shutdown_requests.go). Either
// wrap sees closed or the range sees wrap's connection.
func (r *connRegistry) closeAll() int {
	r.closed.Store(true)
	n := 0
	r.m.Range(func(_, v any) bool {
		_ = v.(*upstreamConn).Close()
		n++
		return true
	})
	return n
}

func (r *connRegistry) lookup(local net.Addr) *upstreamConn {
	if local == nil {
		return nil
	}
	v, ok := r.m.Load(local.String())
	if !ok {
		return nil
	}
	return v.(*upstreamConn)
}

// Connection phases: which of Write or Read moved bytes last. A Write that
// follows a Read begins the next request on a reused connection (HTTP/1.1
// without pipelining alternates the two).
const (
	phaseNew uint32 = iota
	phaseWrote
	phaseRead
)

// upstreamConn is one pooled upstream connection. Before the first write of
// a request on a connection that already carried one, it checks that the
// connection is still usable (see errStaleConn). In stream mode it sets a
// fresh read deadline before every Read: min(now+idle, end). It is used by
// one request at a time; Close may come from another goroutine.
type upstreamConn struct {
	net.Conn
	reg   *connRegistry
	key   string
	probe *connProbe // nil where the platform cannot probe

	phase     atomic.Uint32
	lastRead  atomic.Int64 // unix nanoseconds of the last Read that returned bytes
	keepAlive atomic.Int64 // the upstream's Keep-Alive timeout in nanoseconds; 0 = not announced

	idle   atomic.Int64 // nanoseconds; 0 = stream mode off
	end    atomic.Int64 // unix nanoseconds; 0 = none
	closed atomic.Bool
}

func (c *upstreamConn) streamMode(idle time.Duration, end time.Time) {
	c.end.Store(end.UnixNano())
	c.idle.Store(int64(idle))
}

func (c *upstreamConn) plainMode() {
	c.idle.Store(0)
	c.end.Store(0)
	_ = c.Conn.SetReadDeadline(time.Time{})
}

// setKeepAlive notes the idle timeout the upstream announced.
func (c *upstreamConn) setKeepAlive(d time.Duration) {
	if d > 0 && c.keepAlive.Load() != int64(d) {
		c.keepAlive.Store(int64(d))
	}
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	if idle := c.idle.Load(); idle > 0 {
		d := time.Now().Add(time.Duration(idle))
		if end := c.end.Load(); end > 0 && d.UnixNano() > end {
			d = time.Unix(0, end)
		}
		_ = c.Conn.SetReadDeadline(d)
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
		if c.phase.Load() != phaseRead {
			c.phase.Store(phaseRead)
		}
	}
	return n, err
}

func (c *upstreamConn) Write(p []byte) (int, error) {
	if c.phase.Swap(phaseWrote) != phaseRead {
		return c.Conn.Write(p)
	}
	if err := c.reusable(time.Now()); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if n == 0 && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		// The kernel took no byte of the request: the upstream reset the
		// connection before it could receive any.
		return 0, fmt.Errorf("%w: %w", errStaleConn, err)
	}
	return n, err
}

// reusable reports errStaleConn when the connection must not carry another
// request: idle past the upstream's keep-alive budget, or closed (or
// written to) by the upstream while idle.
func (c *upstreamConn) reusable(now time.Time) error {
	if ka := time.Duration(c.keepAlive.Load()); ka > 0 {
		if idle := now.Sub(time.Unix(0, c.lastRead.Load())); idle >= keepAliveBudget(ka) {
			return errStaleConn
		}
	}
	if c.probe.peerClosed() {
		return errStaleConn
	}
	return nil
}

// keepAliveBudget is how long a connection may sit idle when the upstream
// announced it closes idle connections after ka: the gateway stops using it
// a margin before, so a request never races the upstream's close.
func keepAliveBudget(ka time.Duration) time.Duration {
	return ka - min(time.Second, ka/2)
}

func (c *upstreamConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.reg.m.CompareAndDelete(c.key, c)
	}
	return c.Conn.Close()
}

// parseKeepAliveTimeout reads timeout=N (seconds) from a Keep-Alive header
// value such as "timeout=5, max=1000". It returns 0 when there is none.
func parseKeepAliveTimeout(v []byte) time.Duration {
	for len(v) > 0 {
		var part []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, nil
		}
		part = bytes.TrimSpace(part)
		const name = "timeout="
		if len(part) > len(name) && bytes.EqualFold(part[:len(name)], []byte(name)) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(part[len(name):])))
			if err != nil || n <= 0 {
				return 0
			}
			return time.Duration(min(n, 3600)) * time.Second
		}
	}
	return 0
}

// noteKeepAlive records the Keep-Alive timeout resp announced on the
// connection that carried it. resp's connection may already be back in the
// pool (or carrying another request): the timeout is the upstream's, so it
// holds for the connection whoever uses it.
func (u *upstream) noteKeepAlive(resp *fasthttp.Response) {
	v := resp.Header.Peek("Keep-Alive")
	if len(v) == 0 {
		return
	}
	if d := parseKeepAliveTimeout(v); d > 0 {
		if c := u.conns.lookup(resp.LocalAddr()); c != nil {
			c.setKeepAlive(d)
		}
	}
}
