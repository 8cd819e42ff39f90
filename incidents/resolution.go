package incidents

import (
	"fmt"
	"time"
)

// Resolutions of a resolved incident.
const (
	// ResolutionRecovered: the route stayed healthy for a window after a
	// mitigation.
	ResolutionRecovered = "recovered"
	// ResolutionNoTraffic: the failing scope sent no request for a window
	// while the incident was open. Nothing Cairn or anyone did is known to
	// have fixed it (issue 14.8).
	ResolutionNoTraffic = "no_traffic"
)

// resolveQuiet closes an open incident whose failing scope went quiet for
// a whole window. It is not called mitigated: no rollback or change
// happened, so the timeline and postmortem say the cause may remain. A
// failure after traffic returns opens a new incident.
func (m *Manager) resolveQuiet(id string, now time.Time, window time.Duration) {
	m.syncScope(id, now, true)
	at := now.UTC()
	out, err := m.update(id, func(inc *Incident) bool {
		if inc.Status != StatusOpen {
			return false
		}
		inc.Status = StatusResolved
		inc.Resolution = ResolutionNoTraffic
		inc.ResolvedAt = &at
		inc.addEvent(Event{At: at, Kind: EventRecovery, Replica: m.o.Replica,
			Message: fmt.Sprintf("resolved without mitigation: %s received no request for %s, so nothing could fail; nothing was rolled back or changed, so the cause may remain (failing traffic that returns opens a new incident)",
				quietScope(inc.Trigger), fmtDur(window))})
		return true
	})
	if err != nil {
		m.log.Error("resolve quiet incident", "incident", id, "err", err)
		return
	}
	if out == nil {
		return
	}
	m.log.Info("incident resolved without mitigation: no traffic", "incident", id)
	m.hooks.enqueue(EventResolved, out, m.o.Replica, now)
	m.finish(id)
}

func quietScope(tr Trigger) string {
	if tr.Cohort != "" {
		return "cohort " + tr.Cohort + " of route " + tr.Route
	}
	return "route " + tr.Route
}
