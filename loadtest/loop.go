package loadtest

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Loop defaults.
const (
	DefaultLoopDuration = 10 * time.Second // when a loop sets no Duration (and, open loop, no MaxRequests)
	DefaultMaxInFlight  = 4096
	DefaultDrain        = 10 * time.Second
	maxErrorSamples     = 8
)

// Result is what a load loop measured. It is owned by the caller.
type Result struct {
	// Sent counts calls of do; OK and Errors split them by outcome.
	Sent, OK, Errors int
	// Late counts open-loop requests that found MaxInFlight requests in
	// flight at their scheduled time and waited for a slot (the wait is in
	// their latency).
	Late int
	// Dropped counts open-loop requests whose scheduled time had come but
	// that were never sent because the loop was stopped (ctx, or the drain
	// deadline) while waiting for a slot.
	Dropped int
	// Elapsed runs from the start until the last request finished.
	Elapsed time.Duration
	// Latency holds successful requests: from the scheduled send time in the
	// open loop, from the call in the closed loop.
	Latency *Histogram
	// Throughput is OK per second of Elapsed.
	Throughput float64
	// ErrorSamples holds the first few distinct error messages.
	ErrorSamples []string
	// Timeline splits the run into windows of the loop's Window (empty when
	// Window is 0), by scheduled (open) or start (closed) time.
	Timeline []Window
}

// Window is one slice of a run's timeline.
type Window struct {
	Start      time.Duration // offset from the run's start
	OK, Errors int
	Latency    *Histogram // successful requests of the window
}

// recorder accumulates a run's outcomes; safe for concurrent use.
type recorder struct {
	start  time.Time
	window time.Duration
	lat    *Histogram

	sent, ok, errs, late atomic.Int64

	mu      sync.Mutex
	samples []string
	wins    []*windowRec
}

type windowRec struct {
	ok, errs atomic.Int64
	lat      *Histogram
}

func newRecorder(window time.Duration) *recorder {
	return &recorder{window: window, lat: NewHistogram()}
}

func (r *recorder) sample(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) >= maxErrorSamples {
		return
	}
	for _, s := range r.samples {
		if s == msg {
			return
		}
	}
	r.samples = append(r.samples, msg)
}

func (r *recorder) win(at time.Time) *windowRec {
	if r.window <= 0 {
		return nil
	}
	i := max(0, int(at.Sub(r.start)/r.window))
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.wins) <= i {
		r.wins = append(r.wins, nil)
	}
	if r.wins[i] == nil {
		r.wins[i] = &windowRec{lat: NewHistogram()}
	}
	return r.wins[i]
}

// done records one request measured from `from` (its scheduled or actual
// start) to end.
func (r *recorder) done(from, end time.Time, err error) {
	w := r.win(from)
	if err != nil {
		r.errs.Add(1)
		r.sample(err.Error())
		if w != nil {
			w.errs.Add(1)
		}
		return
	}
	d := end.Sub(from)
	r.ok.Add(1)
	r.lat.Record(d)
	if w != nil {
		w.ok.Add(1)
		w.lat.Record(d)
	}
}

func (r *recorder) result(dropped int) Result {
	res := Result{
		Sent: int(r.sent.Load()), OK: int(r.ok.Load()), Errors: int(r.errs.Load()),
		Late: int(r.late.Load()), Dropped: dropped,
		Elapsed: time.Since(r.start), Latency: r.lat,
	}
	if s := res.Elapsed.Seconds(); s > 0 {
		res.Throughput = float64(res.OK) / s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res.ErrorSamples = append([]string(nil), r.samples...)
	for i, w := range r.wins {
		win := Window{Start: time.Duration(i) * r.window}
		if w == nil {
			win.Latency = NewHistogram()
		} else {
			win.OK, win.Errors, win.Latency = int(w.ok.Load()), int(w.errs.Load()), w.lat
		}
		res.Timeline = append(res.Timeline, win)
	}
	return res
}

// OpenLoop sends requests at a fixed rate regardless of how fast they
// complete, and measures each from its scheduled send time, so a stall is
// charged to every request it delayed (no coordinated omission). A value
// is a configuration; Run may be called many times and concurrently.
type OpenLoop struct {
	// Rate is requests per second; must be > 0.
	Rate float64
	// Duration bounds the schedule: requests are scheduled in
	// [0, Duration). Zero means MaxRequests/Rate when MaxRequests is set,
	// else DefaultLoopDuration.
	Duration time.Duration
	// MaxRequests bounds the count; 0 means no count bound.
	MaxRequests int
	// MaxInFlight bounds concurrency; a request finding it reached waits
	// for a slot and counts as Late. Zero means DefaultMaxInFlight.
	MaxInFlight int
	// Drain is how long after the last scheduled time requests may still
	// wait for a slot or run; then their ctx is canceled and unsent ones
	// count as Dropped. Zero means DefaultDrain.
	Drain time.Duration
	// Window, when > 0, fills Result.Timeline with windows of this size.
	Window time.Duration
}

// Run drives do (called with sequence numbers 0, 1, ... from its own
// goroutines) until the schedule ends or ctx is done, waits for the
// requests in flight, and reports. do must honour its ctx.
func (o OpenLoop) Run(ctx context.Context, do func(ctx context.Context, seq int) error) Result {
	rec := newRecorder(o.Window)
	rec.start = time.Now()
	if !(o.Rate > 0) || math.IsInf(o.Rate, 0) {
		rec.sample("open loop: rate must be a positive number")
		return rec.result(0)
	}
	interval := float64(time.Second) / o.Rate
	dur := o.Duration
	if dur <= 0 {
		dur = DefaultLoopDuration
		if o.MaxRequests > 0 {
			dur = time.Duration(float64(o.MaxRequests) * interval)
		}
	}
	maxIn := o.MaxInFlight
	if maxIn <= 0 {
		maxIn = DefaultMaxInFlight
	}
	drain := o.Drain
	if drain <= 0 {
		drain = DefaultDrain
	}
	// last is the highest sequence number the schedule allows.
	last := int(math.Ceil(float64(dur)/interval)) - 1
	if o.MaxRequests > 0 {
		last = min(last, o.MaxRequests-1)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	rec.start = start
	// Nothing is scheduled past ctx's deadline, even when a stalled process
	// wakes up after it before the deadline's timer has fired.
	if dl, ok := ctx.Deadline(); ok {
		last = min(last, int(math.Ceil(float64(dl.Sub(start))/interval))-1)
	}
	hard := time.AfterFunc(time.Duration(float64(last)*interval)+drain, cancel)
	defer hard.Stop()

	sem := make(chan struct{}, maxIn)
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	dropped := 0
	// fullUntil is when the loop last got a slot it had to wait for: every
	// slot was taken until then.
	var fullUntil time.Time
	for seq := 0; seq <= last; seq++ {
		sched := start.Add(time.Duration(float64(seq) * interval))
		stopped := false
		if d := time.Until(sched); d > 0 {
			timer.Reset(d)
			select {
			case <-runCtx.Done():
				stopped = true
			case <-timer.C:
			}
		} else if runCtx.Err() != nil {
			stopped = true
		}
		if !stopped {
			// Scheduled while the loop was blocked on a full set of slots:
			// late, whether or not a slot is free by the time the loop
			// reaches it (that depends on goroutine scheduling).
			late := sched.Before(fullUntil)
			select {
			case sem <- struct{}{}:
			default:
				late = true
				select {
				case sem <- struct{}{}:
					fullUntil = time.Now()
				case <-runCtx.Done():
					stopped = true
				}
			}
			if late {
				rec.late.Add(1)
			}
		}
		if stopped {
			// Everything scheduled by now but unsent is owed, not lost.
			due := min(last, int(float64(time.Since(start))/interval))
			dropped = max(0, due-seq+1)
			break
		}
		rec.sent.Add(1)
		wg.Add(1)
		go func(seq int, sched time.Time) {
			defer wg.Done()
			err := do(runCtx, seq)
			<-sem
			rec.done(sched, time.Now(), err)
		}(seq, sched)
	}
	wg.Wait()
	return rec.result(dropped)
}

// ClosedLoop runs Workers goroutines that each send a request as soon as
// their previous one finished: it measures peak throughput. A value is a
// configuration; Run may be called many times and concurrently.
type ClosedLoop struct {
	// Workers is the number of concurrent senders (connections); 0 means 1.
	Workers int
	// Duration bounds the run: no request starts after it. Zero means
	// DefaultLoopDuration.
	Duration time.Duration
	// MaxRequests bounds the count; 0 means no count bound.
	MaxRequests int
	// Drain is how long requests in flight at Duration may still run before
	// their ctx is canceled. Zero means DefaultDrain.
	Drain time.Duration
	// Window, when > 0, fills Result.Timeline with windows of this size.
	Window time.Duration
}

// Run drives do (sequence numbers 0, 1, ... shared by the workers) until a
// bound is reached or ctx is done, waits for the workers, and reports.
// do must honour its ctx.
func (c ClosedLoop) Run(ctx context.Context, do func(ctx context.Context, seq int) error) Result {
	workers := max(1, c.Workers)
	dur := c.Duration
	if dur <= 0 {
		dur = DefaultLoopDuration
	}
	drain := c.Drain
	if drain <= 0 {
		drain = DefaultDrain
	}
	rec := newRecorder(c.Window)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	rec.start = start
	hard := time.AfterFunc(dur+drain, cancel)
	defer hard.Stop()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil && time.Since(start) < dur {
				seq := int(next.Add(1) - 1)
				if c.MaxRequests > 0 && seq >= c.MaxRequests {
					return
				}
				rec.sent.Add(1)
				t0 := time.Now()
				err := do(runCtx, seq)
				rec.done(t0, time.Now(), err)
			}
		}()
	}
	wg.Wait()
	return rec.result(0)
}
