package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestOpenLoopRate(t *testing.T) {
	var sends []time.Time
	var mu sync.Mutex
	res := OpenLoop{Rate: 1000, Duration: 500 * time.Millisecond}.Run(context.Background(), func(ctx context.Context, seq int) error {
		mu.Lock()
		sends = append(sends, time.Now())
		mu.Unlock()
		return nil
	})
	if res.Sent != 500 || res.OK != 500 || res.Errors != 0 || res.Dropped != 0 {
		t.Fatalf("result = %+v; want 500 sent and ok", res)
	}
	// The achieved send rate: the least-squares slope of send time over
	// send order, which a few late wake-ups on a noisy box barely move.
	var sx, sy, sxx, sxy float64
	for i, at := range sends {
		x, y := float64(i), at.Sub(sends[0]).Seconds()
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(sends))
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	if rate := 1 / slope; rate < 950 || rate > 1050 {
		t.Errorf("send rate = %.0f/s; want 1000 ±5%%", rate)
	}
	if res.Throughput < 800 || res.Throughput > 1100 {
		t.Errorf("Throughput = %.0f; want ≈ 1000", res.Throughput)
	}
	if res.Latency.Count() != 500 {
		t.Errorf("Latency.Count() = %d", res.Latency.Count())
	}
}

// In fake time every request leaves exactly at its scheduled time.
func TestOpenLoopScheduleExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var bad atomic.Int64
		res := OpenLoop{Rate: 3000, Duration: time.Second}.Run(context.Background(), func(ctx context.Context, seq int) error {
			want := time.Duration(float64(seq) * float64(time.Second) / 3000)
			if d := time.Since(start) - want; d < -time.Microsecond || d > time.Microsecond {
				bad.Add(1)
			}
			return nil
		})
		if res.Sent != 3000 || bad.Load() != 0 || res.Late != 0 {
			t.Errorf("sent %d, %d off schedule, %d late; want 3000, 0, 0", res.Sent, bad.Load(), res.Late)
		}
	})
}

// A stall is charged to every request it delayed, measured from their
// scheduled times (coordinated omission): with one request in flight, a
// 200 ms stall at 200/s delays the ~40 requests scheduled behind it.
func TestOpenLoopChargesStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := OpenLoop{Rate: 200, MaxRequests: 100, MaxInFlight: 1}.Run(context.Background(), func(ctx context.Context, seq int) error {
			if seq == 10 {
				time.Sleep(200 * time.Millisecond)
			}
			return nil
		})
		if res.Sent != 100 || res.OK != 100 {
			t.Fatalf("result = %+v", res)
		}
		if res.Latency.Max() != 200*time.Millisecond {
			t.Errorf("Max() = %v; want 200ms", res.Latency.Max())
		}
		// Requests 11..30 waited 195..100 ms for the slot: with seq 10 that is
		// 21 of 100 at ≥ 100 ms. A closed measurement would put p80 at 0.
		if p := res.Latency.Quantile(0.8); p < 99*time.Millisecond || p > 101*time.Millisecond {
			t.Errorf("Quantile(0.8) = %v; want 100ms (the stall's queue)", p)
		}
		if res.Late < 39 || res.Late > 40 {
			t.Errorf("Late = %d; want the 39 requests scheduled during the stall", res.Late)
		}

		// Unbounded concurrency: the stall still shows in the max.
		res = OpenLoop{Rate: 200, MaxRequests: 40}.Run(context.Background(), func(ctx context.Context, seq int) error {
			if seq == 5 {
				time.Sleep(200 * time.Millisecond)
			}
			return nil
		})
		if res.Latency.Max() != 200*time.Millisecond || res.Late != 0 || res.Latency.Quantile(0.9) != 0 {
			t.Errorf("max %v p90 %v late %d; want 200ms, 0, 0", res.Latency.Max(), res.Latency.Quantile(0.9), res.Late)
		}
	})
}

// In a synctest bubble time only moves when every goroutine waits, so the
// bounds and counts are exact.
func TestLoopBounds(t *testing.T) {
	noop := func(ctx context.Context, seq int) error { return nil }
	sleep10 := func(ctx context.Context, seq int) error {
		time.Sleep(10 * time.Millisecond)
		return nil
	}
	tests := []struct {
		name     string
		run      func() Result
		wantSent int
		took     time.Duration
	}{
		{"open count", func() Result { return OpenLoop{Rate: 1000, MaxRequests: 50}.Run(context.Background(), noop) }, 50, 49 * time.Millisecond},
		{"open duration", func() Result {
			return OpenLoop{Rate: 100, Duration: 200 * time.Millisecond}.Run(context.Background(), sleep10)
		}, 20, 200 * time.Millisecond},
		{"open count before duration", func() Result {
			return OpenLoop{Rate: 1000, Duration: time.Minute, MaxRequests: 30}.Run(context.Background(), noop)
		}, 30, 29 * time.Millisecond},
		{"closed count", func() Result {
			return ClosedLoop{Workers: 4, MaxRequests: 100, Duration: time.Minute}.Run(context.Background(), sleep10)
		}, 100, 250 * time.Millisecond},
		{"closed duration", func() Result {
			return ClosedLoop{Workers: 2, Duration: 200 * time.Millisecond}.Run(context.Background(), sleep10)
		}, 40, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				res := tt.run()
				if res.Sent != tt.wantSent || res.OK != tt.wantSent {
					t.Errorf("sent/ok = %d/%d; want %d", res.Sent, res.OK, tt.wantSent)
				}
				if took := time.Since(start); took != tt.took {
					t.Errorf("took %v; want %v", took, tt.took)
				}
			})
		})
	}

	t.Run("closed seq unique", func(t *testing.T) {
		var seen sync.Map
		res := ClosedLoop{Workers: 4, MaxRequests: 400, Duration: 10 * time.Second}.Run(context.Background(), func(ctx context.Context, seq int) error {
			if _, dup := seen.LoadOrStore(seq, true); dup || seq >= 400 {
				return fmt.Errorf("seq %d again or out of range", seq)
			}
			return nil
		})
		if res.Errors != 0 || res.OK != 400 {
			t.Errorf("result = %+v; want 400 distinct seq", res)
		}
	})
}

// Requests that cannot get a slot before the drain deadline are counted
// as dropped and in-flight ones are canceled: nothing is silently lost.
func TestOpenLoopDropsNotLoses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		res := OpenLoop{Rate: 100, Duration: 200 * time.Millisecond, MaxInFlight: 2, Drain: 100 * time.Millisecond}.Run(context.Background(),
			func(ctx context.Context, seq int) error {
				<-ctx.Done()
				return ctx.Err()
			})
		if took := time.Since(start); took != 290*time.Millisecond {
			t.Errorf("took %v; want 290ms (last schedule 190ms + 100ms drain)", took)
		}
		if res.Sent != 2 || res.Errors != 2 || res.Dropped != 18 || res.Late != 1 {
			t.Errorf("result = sent %d errors %d dropped %d late %d; want 2 sent and canceled, 18 dropped", res.Sent, res.Errors, res.Dropped, res.Late)
		}
		if len(res.ErrorSamples) != 1 || res.ErrorSamples[0] != context.Canceled.Error() {
			t.Errorf("ErrorSamples = %q", res.ErrorSamples)
		}
	})
}

func TestLoopCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		res := OpenLoop{Rate: 100, Duration: time.Minute}.Run(ctx, func(ctx context.Context, seq int) error { return nil })
		// Requests 0..9 are scheduled before the 100ms deadline.
		if took := time.Since(start); took != 90*time.Millisecond || res.Sent != 10 {
			t.Errorf("open loop with a deadline: sent %d in %v; want 10 in 90ms", res.Sent, took)
		}
		ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel2()
		var calls atomic.Int64
		res = ClosedLoop{Workers: 3, Duration: time.Minute}.Run(ctx2, func(ctx context.Context, seq int) error {
			calls.Add(1)
			time.Sleep(time.Millisecond)
			return nil
		})
		if res.Sent != int(calls.Load()) || res.Sent < 300 || res.Sent > 303 || res.Elapsed < 100*time.Millisecond || res.Elapsed > 101*time.Millisecond {
			t.Errorf("closed loop with a deadline: sent %d in %v; want ≈ 300 in 100ms", res.Sent, res.Elapsed)
		}
	})
}

func TestLoopErrorsAndTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := OpenLoop{Rate: 200, Duration: 300 * time.Millisecond, Window: 100 * time.Millisecond}.Run(context.Background(),
			func(ctx context.Context, seq int) error {
				if seq%4 == 0 {
					return fmt.Errorf("boom %d", seq%40)
				}
				return nil
			})
		if res.Sent != 60 || res.Errors != 15 || res.OK != 45 {
			t.Errorf("sent/errors/ok = %d/%d/%d; want 60/15/45", res.Sent, res.Errors, res.OK)
		}
		if len(res.ErrorSamples) != maxErrorSamples {
			t.Errorf("ErrorSamples = %q; want the first %d distinct", res.ErrorSamples, maxErrorSamples)
		}
		if len(res.Timeline) != 3 {
			t.Fatalf("Timeline has %d windows; want 3", len(res.Timeline))
		}
		for i, w := range res.Timeline {
			if w.Start != time.Duration(i)*100*time.Millisecond || w.OK+w.Errors != 20 || w.Errors != 5 || w.Latency.Count() != int64(w.OK) {
				t.Errorf("window %d = start %v ok %d errors %d", i, w.Start, w.OK, w.Errors)
			}
		}

		res = OpenLoop{}.Run(context.Background(), func(ctx context.Context, seq int) error { return errors.New("never") })
		if res.Sent != 0 || len(res.ErrorSamples) != 1 {
			t.Errorf("zero rate: %+v; want nothing sent and a sample saying why", res)
		}
	})
}
