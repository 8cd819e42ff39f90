package incidents

import "slices"

// Unresolved is one incident that is open or mitigated, as /metrics shows
// it (issue 20: alerts on incidents open by severity, a dashboard table
// linking to each).
type Unresolved struct {
	ID, Route, Cohort, Signal, Status, Class string
	Severity                                 string
}

// Unresolved returns the incidents this replica knows that are not
// resolved, oldest first. It reads only memory (never Redis), so a scrape
// never waits on Redis; replicas that took part in an incident know it.
func (m *Manager) Unresolved() []Unresolved {
	m.mu.Lock()
	out := make([]Unresolved, 0, 4)
	for _, v := range m.summaries {
		s := v.Summary
		if s.Status == StatusResolved {
			continue
		}
		out = append(out, Unresolved{ID: s.ID, Route: s.Route, Cohort: s.Cohort, Signal: s.Signal,
			Status: s.Status, Class: s.Class, Severity: string(s.Severity)})
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Unresolved) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}
