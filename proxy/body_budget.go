package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
)

// bodyBudgetWait is how long a request waits for room in
// server.max_inflight_body_bytes before it is refused with 429
// "overloaded": long enough to ride out a burst of large bodies, short
// enough that a client retries elsewhere rather than hangs.
const bodyBudgetWait = 2 * time.Second

var errBodyBudget = statusErr(fasthttp.StatusTooManyRequests, "server_error", "overloaded", capture.OutcomeOverloaded,
	"the gateway holds its limit of request body bytes in flight (server.max_inflight_body_bytes); retry shortly")

// bodyBudget bounds the request body bytes the gateway holds (issue 15:
// RSS ≤ 256 MiB under sustained 1 MB bodies by design). A request takes
// its body's size when it is admitted and gives it back when it
// finishes; when the budget is spent it waits, first come first served,
// up to bodyBudgetWait. A body larger than the whole budget takes all of
// it. Safe for concurrent use.
type bodyBudget struct {
	max     int64
	mu      sync.Mutex
	used    int64
	waiters []*bodyWaiter // FIFO
	inUse   atomic.Int64  // for /metrics
	refused atomic.Uint64
}

type bodyWaiter struct {
	n     int64
	ready chan struct{}
}

func newBodyBudget(max int64) *bodyBudget { return &bodyBudget{max: max} }

// acquire takes n bytes (at most the whole budget), waiting up to wait;
// it returns the bytes taken (to release) and false when it gave up.
func (b *bodyBudget) acquire(n int64, wait time.Duration) (int64, bool) {
	if b == nil || b.max <= 0 || n <= 0 {
		return 0, true
	}
	n = min(n, b.max)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.max {
		b.used += n
		b.mu.Unlock()
		b.inUse.Add(n)
		return n, true
	}
	w := &bodyWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.ready:
		b.inUse.Add(n)
		return n, true
	case <-t.C:
	}
	b.mu.Lock()
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			b.mu.Unlock()
			b.refused.Add(1)
			return 0, false
		}
	}
	// Granted between the timer and the lock: keep it.
	b.mu.Unlock()
	b.inUse.Add(n)
	return n, true
}

// release gives back n bytes and wakes the waiters that now fit, in order.
func (b *bodyBudget) release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.inUse.Add(-n)
	b.mu.Lock()
	b.used -= n
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.max {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
	b.mu.Unlock()
}
