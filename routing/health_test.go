package routing

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestBreakerTransitions walks one circuit through every transition on the
// synctest clock: closed, open after 5 consecutive failures, half-open
// with exactly one probe after 30s, re-open on a failed probe, closed on a
// successful one.
func TestBreakerTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreakers(5, 30*time.Second, time.Now)
		h := b.Health("openai", "gpt-4o-mini")
		expect := func(step, want string, allow bool) {
			t.Helper()
			if got := h.State(); got != want {
				t.Errorf("%s: State() = %q; want %q", step, got, want)
			}
			if got := h.Allow(); got != allow {
				t.Errorf("%s: Allow() = %v; want %v", step, got, allow)
			}
		}
		expect("new", StateClosed, true)

		for range 4 {
			h.Failure()
		}
		h.Success() // breaks the run of failures
		for range 4 {
			h.Failure()
		}
		expect("4 failures after a success", StateClosed, true)
		h.Failure()
		expect("5 consecutive failures", StateOpen, false)
		h.Success() // a late reply from before the circuit opened
		expect("stale success while open", StateOpen, false)

		time.Sleep(30*time.Second - time.Millisecond)
		expect("just before the cooldown ends", StateOpen, false)
		time.Sleep(time.Millisecond)
		if got := h.State(); got != StateHalfOpen {
			t.Errorf("cooldown over: State() = %q; want half_open", got)
		}
		if !h.Allow() {
			t.Fatalf("cooldown over: first Allow() = false; want the probe")
		}
		for i := range 3 {
			if h.Allow() {
				t.Errorf("probe in flight: Allow() #%d = true; want exactly one probe", i+2)
			}
		}
		h.Failure()
		expect("failed probe", StateOpen, false)

		time.Sleep(30 * time.Second)
		if !h.Allow() {
			t.Fatalf("second cooldown over: Allow() = false; want the probe")
		}
		h.Success()
		expect("successful probe", StateClosed, true)
		if h.Failures() != 0 {
			t.Errorf("Failures() after closing = %d; want 0", h.Failures())
		}
		for range 4 {
			h.Failure()
		}
		expect("closed again counts from zero", StateClosed, true)
	})
}

// TestBreakerLostProbe checks that a probe which never reports (the client
// went away) does not keep the circuit half-open forever.
func TestBreakerLostProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewBreakers(2, 10*time.Second, time.Now).Health("p", "m")
		h.Failure()
		h.Failure()
		time.Sleep(10 * time.Second)
		if !h.Allow() {
			t.Fatal("Allow() after cooldown = false; want the probe")
		}
		time.Sleep(9 * time.Second)
		if h.Allow() {
			t.Error("Allow() while the probe is in flight = true; want false")
		}
		time.Sleep(time.Second)
		if !h.Allow() {
			t.Error("Allow() a cooldown after a silent probe = false; want a new probe")
		}
	})
}

func TestBreakersDefaults(t *testing.T) {
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	h := NewBreakers(0, 0, clock).Health("p", "")
	for range DefaultThreshold - 1 {
		h.Failure()
	}
	if h.State() != StateClosed {
		t.Fatalf("State() after %d failures = %s; want closed", DefaultThreshold-1, h.State())
	}
	h.Failure()
	if h.State() != StateOpen {
		t.Fatalf("State() after %d failures = %s; want open", DefaultThreshold, h.State())
	}
	now.Add(int64(DefaultCooldown - 1))
	if h.Allow() {
		t.Errorf("Allow() before the default cooldown = true")
	}
	now.Add(1)
	if !h.Allow() {
		t.Errorf("Allow() after the default cooldown = false")
	}
	// A clock that steps back must not let anything through or panic.
	now.Store(-int64(time.Hour))
	h.Failure()
	if h.Allow() {
		t.Errorf("Allow() with the clock stepped back = true")
	}
}

// TestBreakerConcurrentProbe checks under contention that a cooled-down
// circuit hands out exactly one probe.
func TestBreakerConcurrentProbe(t *testing.T) {
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	for range 50 {
		h := NewBreakers(3, time.Second, clock).Health("p", "m")
		for range 3 {
			h.Failure()
		}
		now.Add(int64(time.Second))
		var probes atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if h.Allow() {
						probes.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := probes.Load(); n != 1 {
			t.Fatalf("%d goroutines got %d probes; want exactly 1", 8, n)
		}
	}
}
