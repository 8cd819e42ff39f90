package main

import (
	"context"
	"sync"
	"time"
)

// paced calls one rps times a second, each in its own goroutine, until
// ctx ends, then waits for the calls in flight. At most maxInFlight run at
// once: when the app is saturated a tick is skipped (an open loop would
// queue; the demo skips).
func paced(ctx context.Context, rps, maxInFlight int, one func()) {
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	sem := make(chan struct{}, maxInFlight)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			continue
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-sem }()
			one()
		}()
	}
}
