package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
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
	// The achieved send rate, first to last send.
	span := sends[len(sends)-1].Sub(sends[0]).Seconds()
	if rate := float64(len(sends)-1) / span; rate < 950 || rate > 1050 {
		t.Errorf("send rate = %.0f/s over %.3fs; want 1000 ±5%%", rate, span)
	}
	if res.Throughput < 900 || res.Throughput > 1100 {
		t.Errorf("Throughput = %.0f; want ≈ 1000", res.Throughput)
	}
	if res.Latency.Count() != 500 {
		t.Errorf("Latency.Count() = %d", res.Latency.Count())
	}
}

// A stall is charged to every request it delayed, measured from their
// scheduled times (coordinated omission): with one request in flight, a
// 200 ms stall at 200/s delays the ~40 requests scheduled behind it.
func TestOpenLoopChargesStall(t *testing.T) {
	res := OpenLoop{Rate: 200, MaxRequests: 100, MaxInFlight: 1}.Run(context.Background(), func(ctx context.Context, seq int) error {
		if seq == 10 {
			time.Sleep(200 * time.Millisecond)
		}
		return nil
	})
	if res.Sent != 100 || res.OK != 100 {
		t.Fatalf("result = %+v", res)
	}
	if res.Latency.Max() < 200*time.Millisecond {
		t.Errorf("Max() = %v; want ≥ 200ms", res.Latency.Max())
	}
	// A closed measurement would put p80 near 0; ~20 requests waited > 100 ms.
	if p := res.Latency.Quantile(0.8); p < 90*time.Millisecond {
		t.Errorf("Quantile(0.8) = %v; want ≥ 90ms (the stall's queue)", p)
	}
	if res.Late < 30 {
		t.Errorf("Late = %d; want the ~39 requests that found the slot busy", res.Late)
	}

	// Unbounded concurrency: the stall still shows in the max.
	res = OpenLoop{Rate: 200, MaxRequests: 40}.Run(context.Background(), func(ctx context.Context, seq int) error {
		if seq == 5 {
			time.Sleep(200 * time.Millisecond)
		}
		return nil
	})
	if res.Latency.Max() < 200*time.Millisecond || res.Late != 0 {
		t.Errorf("max %v late %d; want ≥ 200ms and 0", res.Latency.Max(), res.Late)
	}
}

func TestLoopBounds(t *testing.T) {
	noop := func(ctx context.Context, seq int) error { return nil }
	tests := []struct {
		name     string
		run      func() Result
		wantSent int
		maxTime  time.Duration
	}{
		{"open count", func() Result { return OpenLoop{Rate: 10000, MaxRequests: 50}.Run(context.Background(), noop) }, 50, time.Second},
		{"open duration", func() Result {
			return OpenLoop{Rate: 100, Duration: 200 * time.Millisecond}.Run(context.Background(), noop)
		}, 20, time.Second},
		{"open count before duration", func() Result {
			return OpenLoop{Rate: 1000, Duration: time.Minute, MaxRequests: 30}.Run(context.Background(), noop)
		}, 30, time.Second},
		{"closed count", func() Result {
			return ClosedLoop{Workers: 4, MaxRequests: 100, Duration: time.Minute}.Run(context.Background(), noop)
		}, 100, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res := tt.run()
			if res.Sent != tt.wantSent || res.OK != tt.wantSent {
				t.Errorf("sent/ok = %d/%d; want %d", res.Sent, res.OK, tt.wantSent)
			}
			if took := time.Since(start); took > tt.maxTime {
				t.Errorf("took %v; want < %v", took, tt.maxTime)
			}
		})
	}

	t.Run("closed duration", func(t *testing.T) {
		var seen sync.Map
		start := time.Now()
		res := ClosedLoop{Workers: 2, Duration: 200 * time.Millisecond}.Run(context.Background(), func(ctx context.Context, seq int) error {
			if _, dup := seen.LoadOrStore(seq, true); dup {
				return fmt.Errorf("seq %d twice", seq)
			}
			time.Sleep(10 * time.Millisecond)
			return nil
		})
		took := time.Since(start)
		if res.Errors != 0 || res.Sent < 20 || res.Sent > 44 {
			t.Errorf("result = %+v; want ≈ 40 requests, no duplicate seq", res)
		}
		if took < 200*time.Millisecond || took > 500*time.Millisecond {
			t.Errorf("took %v; want ≈ 210ms", took)
		}
		if res.Latency.Quantile(0.5) < 10*time.Millisecond {
			t.Errorf("p50 = %v; want ≥ 10ms", res.Latency.Quantile(0.5))
		}
	})
}

// Requests that cannot get a slot before the drain deadline are counted
// as dropped and in-flight ones are canceled: nothing is silently lost.
func TestOpenLoopDropsNotLoses(t *testing.T) {
	start := time.Now()
	res := OpenLoop{Rate: 100, Duration: 200 * time.Millisecond, MaxInFlight: 2, Drain: 100 * time.Millisecond}.Run(context.Background(),
		func(ctx context.Context, seq int) error {
			<-ctx.Done()
			return ctx.Err()
		})
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v; want ≈ 290ms", took)
	}
	if res.Sent != 2 || res.Errors != 2 || res.Sent+res.Dropped != 20 || res.Late < 1 {
		t.Errorf("result = sent %d errors %d dropped %d late %d; want 2 sent and canceled, 18 dropped", res.Sent, res.Errors, res.Dropped, res.Late)
	}
	if len(res.ErrorSamples) != 1 || res.ErrorSamples[0] != context.Canceled.Error() {
		t.Errorf("ErrorSamples = %q", res.ErrorSamples)
	}
}

func TestLoopCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := OpenLoop{Rate: 100, Duration: time.Minute}.Run(ctx, func(ctx context.Context, seq int) error { return nil })
	if took := time.Since(start); took > 500*time.Millisecond || res.Sent < 5 || res.Sent > 15 {
		t.Errorf("open loop after cancel: sent %d in %v", res.Sent, took)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	var calls atomic.Int64
	res = ClosedLoop{Workers: 3, Duration: time.Minute}.Run(ctx2, func(ctx context.Context, seq int) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	})
	if res.Sent != int(calls.Load()) || res.Elapsed > 500*time.Millisecond {
		t.Errorf("closed loop after cancel: %+v", res)
	}
}

func TestLoopErrorsAndTimeline(t *testing.T) {
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
}
