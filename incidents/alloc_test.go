//go:build !race

package incidents

import (
	"testing"
	"time"
)

// Observe runs for every request on the capture writer's goroutine: in
// steady state it must not allocate.
func TestObserveAllocations(t *testing.T) {
	for _, open := range []bool{false, true} {
		m, rs, clock := observeFixture(t, open)
		i := 0
		n := testing.AllocsPerRun(1000, func() {
			clock.Add(time.Millisecond)
			m.Observe(rs[i%len(rs)])
			i++
		})
		if n > 0 {
			t.Errorf("Observe (incident open: %v) allocates %.1f times per record; want 0", open, n)
		}
	}
}
