package proxy

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 15: the request bodies held in flight never pass
// server.max_inflight_body_bytes; a request that finds no room waits for
// one to finish, and gives up (429 overloaded) after the wait.
func TestBodyBudgetBoundsInflightBytes(t *testing.T) {
	const max = 10 << 20
	b := newBodyBudget(max)
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				n, ok := b.acquire(1<<20, 5*time.Second)
				if !ok {
					t.Error("acquire gave up while bodies were being released")
					return
				}
				if h := held.Add(n); h > peak.Load() {
					peak.Store(h)
				}
				time.Sleep(100 * time.Microsecond)
				held.Add(-n)
				b.release(n)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > max {
		t.Errorf("bytes held at once peaked at %d; budget %d", p, max)
	}
	if b.inUse.Load() != 0 || b.used != 0 {
		t.Errorf("after all released: in use %d, used %d; want 0", b.inUse.Load(), b.used)
	}

	// A body larger than the budget is admitted alone.
	n, ok := b.acquire(50<<20, time.Second)
	if !ok || n != max {
		t.Fatalf("acquire(50 MiB) = %d, %v; want the whole budget", n, ok)
	}
	// Then a request that finds no room gives up after the wait and is
	// counted.
	start := time.Now()
	if _, ok := b.acquire(1<<20, 50*time.Millisecond); ok {
		t.Fatal("acquire succeeded with the budget spent")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("gave up after %s; want the wait (50ms)", d)
	}
	if b.refused.Load() != 1 {
		t.Errorf("refused = %d; want 1", b.refused.Load())
	}
	// Waiters are served first come, first served when room returns.
	order := make(chan int, 2)
	var wg2 sync.WaitGroup
	for i := range 2 {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			if m, ok := b.acquire(max, 5*time.Second); ok {
				order <- i
				b.release(m)
			}
		}()
		for { // wait until the waiter is queued before starting the next
			b.mu.Lock()
			q := len(b.waiters)
			b.mu.Unlock()
			if q == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.release(n)
	wg2.Wait()
	if first := <-order; first != 0 {
		t.Errorf("waiter %d served first; want 0 (first come)", first)
	}
}
