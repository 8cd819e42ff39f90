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
// goroutine that would write a call may not have written it yet, and the
// one that would read Redis's reply may not run for hundreds of
// milliseconds while the reply waits in the socket. conns remembers every
// connection the client dials (a go-redis dial hook) and asks the kernel
// about their sockets: bytes waiting unread (a non-blocking MSG_PEEK), and,
// where there is TCP_INFO, how long ago each last sent and last received
// data. Safe for concurrent use.
type conns struct {
	mu  sync.Mutex
	raw map[net.Conn]syscall.RawConn // keyed by the dialed connection

	hooked atomic.Bool // the dial hook is installed: evidence exists

	// The last look, reused for peekEvery: a hung Redis is asked about on
	// every request of a key whose slice is empty. Guarded by mu.
	lookedAt time.Time
	socks    []sockState
}

// sockState is what the kernel says of one socket.
type sockState struct {
	unread     bool          // bytes arrived and wait unread
	sent, recv time.Duration // since data last left and last arrived; −1: unknown
}

// peekEvery is how long one look into the sockets stands.
const peekEvery = 5 * time.Millisecond

// jiffy is the slack on the kernel's millisecond times (TCP_INFO counts
// in jiffies, down to 4ms apart at HZ 250).
const jiffy = 5 * time.Millisecond

// Verdicts of the sockets on a silence.
const (
	sockAnswered = iota // something came in after the request left: not silent
	sockNotOut          // no request has left since the silence began
	sockOut             // a request left at the time given, nothing came in since
	sockUnknown         // no TCP_INFO: only the peek spoke, and found nothing unread
)

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
		if _, err := sockOf(r); err != nil {
			delete(cs.raw, k)
		}
	}
	cs.raw[t] = rc
}

// verdict is what the sockets say at now of a silence that began at from
// (the send of the oldest unanswered call, on this process's clock): with
// sockOut, left is when the oldest request sent since from left. known is
// false without the dial hook or on a platform without the peek.
func (cs *conns) verdict(now, from time.Time) (v int, left time.Time, known bool) {
	if !cs.hooked.Load() || !canPeek {
		return 0, time.Time{}, false
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.lookedAt.IsZero() || now.Sub(cs.lookedAt) >= peekEvery || now.Before(cs.lookedAt) {
		cs.socks = cs.socks[:0]
		for k, r := range cs.raw {
			st, err := sockOf(r)
			if err != nil {
				delete(cs.raw, k)
				continue
			}
			cs.socks = append(cs.socks, st)
		}
		cs.lookedAt = now
	}
	if !haveTCPInfo {
		for _, st := range cs.socks {
			if st.unread {
				return sockAnswered, time.Time{}, true
			}
		}
		return sockUnknown, time.Time{}, true
	}
	// The oldest request that left since from, and whether anything
	// arrived after it (or waits unread).
	oldest := time.Duration(-1)
	for _, st := range cs.socks {
		if st.unread {
			return sockAnswered, time.Time{}, true
		}
		if st.sent >= 0 && !now.Add(-st.sent).Before(from.Add(-jiffy)) && st.sent > oldest {
			oldest = st.sent
		}
	}
	if oldest < 0 {
		return sockNotOut, time.Time{}, true
	}
	for _, st := range cs.socks {
		if st.recv >= 0 && st.recv < oldest {
			return sockAnswered, time.Time{}, true
		}
	}
	return sockOut, now.Add(-oldest), true
}
