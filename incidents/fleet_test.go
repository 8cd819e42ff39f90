package incidents

import (
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/internal/redistest"
)

// Incidents are claimed per route and cohort (issue 17): replica a sees the
// canary break its contract, replica b sees the same canary fail with
// upstream errors; one incident, with b's signal as a wave.
func TestRedisOneIncidentPerCohortAcrossSignals(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv, "a"), newReplica(t, srv, "b")
	g := &recs{}
	a.breakCanary(t, g)
	waitFor(t, 2*time.Second, "replica a's incident", func() bool { return len(a.m.List()) == 1 })
	id := a.m.List()[0].ID

	for i := range 40 {
		cohort := "stable"
		if i%4 == 0 {
			cohort = "canary"
		}
		b.m.Observe(g.make("support-bot", cohort, capture.OutcomeOK))
	}
	for i := range 200 {
		if i%4 == 0 {
			b.m.Observe(g.make("support-bot", "canary", capture.OutcomeUpstreamError))
		} else {
			b.m.Observe(g.make("support-bot", "stable", capture.OutcomeOK))
		}
		if len(b.live.rollbacks()) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, 3*time.Second, "replica b's signal on a's incident", func() bool {
		inc, _ := a.m.Get(id)
		return inc != nil && len(inc.Waves) >= 2
	})
	inc, _ := a.m.Get(id)
	if w := inc.Waves[len(inc.Waves)-1]; w.Replica != "b" || w.Signal != SignalErrorRate {
		t.Errorf("last wave = %+v; want replica b's error_rate", w)
	}
	for _, r := range []*replica{a, b} {
		if l := r.m.List(); len(l) != 1 || l[0].ID != id {
			t.Errorf("replica %s lists %+v; want only %s", r.m.o.Replica, l, id)
		}
	}
}
