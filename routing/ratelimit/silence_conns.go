package ratelimit

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// conns is the evidence that tells a hung Redis from a starved gateway.
// Silence measured on this process's clock cannot: on a starved machine the
// goroutine that would read Redis's reply may not run for hundreds of
// milliseconds while the reply waits in the socket. conns remembers every
// connection the client dials (a go-redis dial hook) and looks into their
// kernel receive buffers without reading them: bytes waiting on any of
// them mean Redis answered and this process has not caught up. Safe for
// concurrent use.
type conns struct {
	mu  sync.Mutex
	raw map[net.Conn]syscall.RawConn // keyed by the dialed connection

	hooked atomic.Bool // the dial hook is installed: evidence exists

	// The last look, reused for peekEvery: a hung Redis is asked about on
	// every request of a key whose slice is empty.
	lookedAt atomic.Int64 // unix ns; 0: never
	waiting  atomic.Bool
}

// peekEvery is how long one look into the sockets stands.
const peekEvery = 5 * time.Millisecond

// dialHook is a redis.Hook that registers each connection dialed.
type dialHook struct{ cs *conns }

func (h dialHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err == nil {
			h.cs.add(c)
		}
		return c, err
	}
}

func (dialHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (dialHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// add registers c (its transport, under TLS) and forgets the connections
// that have been closed since the last dial, so the set stays as small as
// the pool.
func (cs *conns) add(c net.Conn) {
	t := c
	for range 8 {
		u, ok := t.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		t = u.NetConn()
	}
	sc, ok := t.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.raw == nil {
		cs.raw = make(map[net.Conn]syscall.RawConn)
	}
	for k, r := range cs.raw {
		if _, err := peekConn(r); err != nil {
			delete(cs.raw, k)
		}
	}
	cs.raw[t] = rc
}

// answerWaiting reports whether bytes from Redis wait unread on any
// connection, and whether it could tell (false without the dial hook or on
// a platform without a non-blocking peek).
func (cs *conns) answerWaiting(now time.Time) (waiting, known bool) {
	if !cs.hooked.Load() || !canPeek {
		return false, false
	}
	if at := cs.lookedAt.Load(); at != 0 && now.UnixNano()-at < int64(peekEvery) {
		return cs.waiting.Load(), true
	}
	cs.mu.Lock()
	waiting = false
	for k, r := range cs.raw {
		n, err := peekConn(r)
		if err != nil {
			delete(cs.raw, k)
			continue
		}
		if n {
			waiting = true
			break
		}
	}
	cs.mu.Unlock()
	cs.waiting.Store(waiting)
	cs.lookedAt.Store(now.UnixNano())
	return waiting, true
}
