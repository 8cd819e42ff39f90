package loadtest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// The parts every drill shares: start the stable and canary mocks and a
// gateway, run recorded load, poll the admin API, wait for the rollback,
// and turn times and per-bucket counts into the report's figures and
// chart.

// canaryDrillRoute configures a canary drill's gateway: the route serves
// 80% stable and 20% canary with automatic rollback.
type canaryDrillRoute struct {
	release   string
	system    string
	contract  configs.Contract
	detection configs.Detection
}

// startCanaryDrill starts the stable and canary mocks (drillLatency) and
// one gateway routing drillRoute over them. It returns the canary mock's
// address, the gateway and the client key's secret.
func (e *runEnv) startCanaryDrill(c canaryDrillRoute) (canaryAddr string, gw *gateway, secret string, err error) {
	e.progress("starting the stable and canary mocks and cairn")
	stableAddr, err := e.startMock(mockSpec{name: "mock-stable", latency: drillLatency, prefix: "stable"})
	if err != nil {
		return "", nil, "", err
	}
	canaryAddr, err = e.startMock(mockSpec{name: "mock-canary", latency: drillLatency, prefix: "canary"})
	if err != nil {
		return "", nil, "", err
	}
	key, secret := benchKey("drill", 0)
	gw, err = e.startGateway("cairn", configs.Config{
		Release: c.release,
		Providers: []configs.Provider{
			{Name: "mock-stable", BaseURL: "http://" + stableAddr + "/v1", Timeout: configs.Duration(10 * time.Second)},
			{Name: "mock-canary", BaseURL: "http://" + canaryAddr + "/v1", Timeout: configs.Duration(10 * time.Second)},
		},
		Keys: []configs.Key{key},
		Routes: []configs.Route{{
			Name:   drillRoute,
			Prompt: configs.Prompt{Version: "v1", System: c.system},
			Sticky: "user",
			Targets: []configs.Target{
				{Provider: "mock-stable", Model: "gpt-4o-mini", Weight: intp(80), Cohort: "stable"},
				{Provider: "mock-canary", Model: "gpt-4.1-mini", Weight: intp(20), Cohort: "canary"},
			},
			Contract:     c.contract,
			AutoRollback: true,
		}},
		Detection: c.detection,
	})
	if err != nil {
		return "", nil, "", err
	}
	return canaryAddr, gw, secret, nil
}

// drillBodies returns 4096 chat bodies for drillRoute, each from a random
// user (the route is sticky by user).
func drillBodies() [][]byte {
	bodies := make([][]byte, 4096)
	for i := range bodies {
		bodies[i] = benchBody(drillRoute, fmt.Sprintf("user-%08x", rand.Uint32()), false)
	}
	return bodies
}

// watchDrill polls the gateway's admin API (drillPoll) until the returned
// stop is called; stop waits for the poller to end.
func (e *runEnv) watchDrill(admin string) (*drillWatch, func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	w := &drillWatch{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.drillPoll(ctx, admin, w)
	}()
	return w, func() { cancel(); wg.Wait() }
}

// waitCanaryOff waits up to maxWait for the poller to see the canary lose
// its weight, failing early if the gateway exits. It reports whether the
// rollback was seen.
func (e *runEnv) waitCanaryOff(w *drillWatch, g *gateway, maxWait time.Duration) (bool, error) {
	deadline := time.NewTimer(maxWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return false, e.ctx.Err()
		case <-deadline.C:
			return false, nil
		case <-tick.C:
			if !w.view().canaryOff.IsZero() {
				return true, nil
			}
			if err := alive(g.child); err != nil {
				return false, err
			}
		}
	}
}

// drillLoad is open-loop load whose every request is kept in reqs for the
// analysis.
type drillLoad struct {
	rate  float64
	total time.Duration
	// post sends request seq.
	post func(ctx context.Context, seq int) (chatOutcome, error)
	// dropStopped leaves a request the drill's own stop cut off out of
	// the record altogether (its sent time stays zero) and out of the
	// load's errors; otherwise it is kept, marked stopped when it was in
	// flight under stopGrace (cutOffByStop).
	dropStopped bool

	reqs []drillReq
	used atomic.Int64
}

// start runs the load in the background until it has run total or ctx
// ends; the returned channel gets its Result.
func (l *drillLoad) start(ctx context.Context) <-chan Result {
	l.reqs = make([]drillReq, int(math.Ceil(l.rate*l.total.Seconds()))+1)
	done := make(chan Result, 1)
	go func() {
		done <- OpenLoop{Rate: l.rate, Duration: l.total, MaxInFlight: openMaxInFlight, Drain: 10 * time.Second}.Run(ctx, func(rctx context.Context, seq int) error {
			if seq >= len(l.reqs) {
				return nil
			}
			q := &l.reqs[seq]
			q.sent = time.Now()
			o, err := l.post(rctx, seq)
			q.done = time.Now()
			if l.dropStopped && err != nil && ctx.Err() != nil {
				// The drill ended the load: not the gateway's failure.
				q.sent = time.Time{}
				return nil
			}
			q.status, q.contract, q.cohort, q.err, q.degraded = o.status, o.contract, o.cohort, err != nil, o.degraded
			if !l.dropStopped {
				q.stopped = cutOffByStop(err, ctx, q.sent, q.done)
			}
			for {
				u := l.used.Load()
				if int64(seq+1) <= u || l.used.CompareAndSwap(u, int64(seq+1)) {
					break
				}
			}
			if err != nil {
				return err
			}
			if o.status != 200 {
				return statusError(o)
			}
			return nil
		})
	}()
	return done
}

// recorded returns the requests the load sent (some may have a zero sent
// time: see dropStopped).
func (l *drillLoad) recorded() []drillReq {
	return l.reqs[:int(min(l.used.Load(), int64(len(l.reqs))))]
}

// secBetween is b - a in seconds, NaN when either is unknown.
func secBetween(a, b time.Time) float64 {
	if a.IsZero() || b.IsZero() {
		return nan()
	}
	return b.Sub(a).Seconds()
}

// bucketCounter counts samples per fixed-width time bucket since start,
// and among them those of each of a few classes, for a drill's "% of
// requests per bucket" chart.
type bucketCounter struct {
	start time.Time
	width time.Duration
	all   []int
	hits  [][]int // [class][bucket]
}

// newBucketCounter covers start until now in buckets of width.
func newBucketCounter(start time.Time, width time.Duration, classes int) *bucketCounter {
	nb := int(time.Since(start)/width) + 1
	b := &bucketCounter{start: start, width: width, all: make([]int, nb), hits: make([][]int, classes)}
	for i := range b.hits {
		b.hits[i] = make([]int, nb)
	}
	return b
}

// add counts a sample at t, in each class whose flag is true.
func (b *bucketCounter) add(t time.Time, in ...bool) {
	i := int(t.Sub(b.start) / b.width)
	if i < 0 || i >= len(b.all) {
		return
	}
	b.all[i]++
	for c, ok := range in {
		if ok {
			b.hits[c][i]++
		}
	}
}

// series returns one series a class, named by names: the class's share
// of each non-empty bucket in percent, at the bucket's middle.
func (b *bucketCounter) series(names ...string) []Series {
	out := make([]Series, len(names))
	for c, name := range names {
		out[c].Name = name
		for i, n := range b.all {
			if n == 0 {
				continue
			}
			t := (float64(i) + 0.5) * b.width.Seconds()
			out[c].Points = append(out[c].Points, Point{T: t, V: 100 * float64(b.hits[c][i]) / float64(n)})
		}
	}
	return out
}

// timeMark is a moment to mark on a drill's chart.
type timeMark struct {
	t     time.Time
	label string
}

// markers places the known moments in seconds since start; unknown (zero)
// ones are left out.
func markers(start time.Time, marks ...timeMark) []Marker {
	var out []Marker
	for _, m := range marks {
		if !m.t.IsZero() {
			out = append(out, Marker{T: m.t.Sub(start).Seconds(), Label: m.label})
		}
	}
	return out
}
