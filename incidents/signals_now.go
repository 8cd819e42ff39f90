package incidents

// Issue 18: the console's overview shows each signal's current value per
// cohort against its threshold. GET /admin/signals serves this.

// SignalNow is one signal's value on one cohort of a route in the current
// detection window.
type SignalNow struct {
	Route  string `json:"route"`
	Cohort string `json:"cohort"`
	Signal string `json:"signal"`
	Unit   string `json:"unit"`
	// Value and Threshold share Unit; Threshold is what the value is held
	// against now (for ratio signals, the level times the baseline), 0
	// while it is not known.
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Baseline  float64 `json:"baseline,omitempty"`
	Requests  int64   `json:"requests"`
	// Verdict is below, crossing, or unknown (too few requests to judge).
	Verdict string `json:"verdict"`
	// Live is false for a cohort with no weight (rolled back).
	Live bool `json:"live"`
}

// Signals returns every enabled record signal for every cohort of every
// live route, in route and cohort order, as this replica sees them now.
func (m *Manager) Signals() []SignalNow {
	now := m.now()
	st := m.o.State.State()
	var out []SignalNow
	for _, rs := range st.Routes {
		seen := map[string]bool{}
		for _, t := range rs.Targets {
			if seen[t.Cohort] {
				continue
			}
			seen[t.Cohort] = true
			for sig := range nSignals {
				if !m.det.cfg.enabled(sig) {
					continue
				}
				o, live := m.det.check(rs.Name, t.Cohort, sig, now)
				out = append(out, SignalNow{Route: rs.Name, Cohort: t.Cohort, Signal: signalName(sig), Unit: signalUnit(sig),
					Value: o.observed, Threshold: o.threshold, Baseline: o.baseline, Requests: o.n, Verdict: verdictName(o.verdict), Live: live})
			}
		}
	}
	return out
}

func verdictName(v int) string {
	switch v {
	case verdictCrossing:
		return "crossing"
	case verdictUnknown:
		return "unknown"
	}
	return "below"
}
