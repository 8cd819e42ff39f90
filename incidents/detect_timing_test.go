package incidents

import (
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
)

// BenchmarkObserve measures the detector's cost per capture record on
// the writer goroutine: healthy traffic on a two-cohort route, and the
// same while an incident is open (its scope is counted per record).
func BenchmarkObserve(b *testing.B) {
	b.Run("healthy", func(b *testing.B) { benchmarkObserve(b, false) })
	b.Run("incident-open", func(b *testing.B) { benchmarkObserve(b, true) })
}

func benchmarkObserve(b *testing.B, open bool) {
	b.ReportAllocs()
	m, rs, clock := observeFixture(b, open)
	i := 0
	for b.Loop() {
		clock.Add(time.Millisecond)
		m.Observe(rs[i%len(rs)])
		i++
	}
}

func observeFixture(tb testing.TB, open bool) (*Manager, []*capture.Record, *fakeClock) {
	clock := newFakeClock()
	m, err := NewManager(Options{
		Detection: testDetection(30*time.Second, 20), DataDir: tb.TempDir(),
		State: newFakeLive(twoCohortState(true)), Now: clock.Now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	g := &recs{now: clock.Now}
	var rs []*capture.Record
	for i := range 100 {
		cohort := "stable"
		if i%5 == 0 {
			cohort = "canary"
		}
		r := g.make("support-bot", cohort, capture.OutcomeOK)
		r.LatencyMS = float64(50 + i)
		rs = append(rs, r)
	}
	if open {
		m.det.ensureTracker("support-bot", incidentKey("support-bot", SignalErrorRate), SignalErrorRate, "canary", predicate{sig: sigError}, clock.Now())
	}
	// Warm the windows up so that buckets and maps exist.
	for range 3 {
		for _, r := range rs {
			clock.Add(time.Millisecond)
			m.Observe(r)
		}
	}
	return m, rs, clock
}
