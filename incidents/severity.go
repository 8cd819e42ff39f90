package incidents

import (
	"fmt"

	"github.com/cairnhq/cairn/configs"
)

// Issue 16.4: every signal has an investigate and a page level
// (configs.Threshold). A signal fires at the lowest level set; the
// incident records the severity it reached, is raised from investigate to
// page (with a timeline event and a webhook) when the page level is
// crossed later, and only page lets the automatic rollback act.

// ClassSecurity is Incident.Class for incidents whose harm is exposure,
// not failure: the pii_leak_rate signal's.
const ClassSecurity = "security"

// EventSeverityRaised is the timeline event (and webhook event) of an
// incident raised from investigate to page.
const EventSeverityRaised = "severity_raised"

// severity returns the level o reached on sig's threshold: which of the
// investigate and page levels the observation crosses, judged as the
// signal judges its single threshold.
func (c *detConfig) severity(sig int, o obs) configs.Severity {
	if sig >= nSignals {
		return configs.SeverityPage // declared by hand: a person decided
	}
	t := c.thr[sig]
	var above func(x float64) bool
	switch signalTable[sig].kind {
	case kindRate:
		above = func(x float64) bool { return o.observed >= x }
	case kindDrop:
		above = func(x float64) bool { return o.baseline-o.observed >= x*c.eval.point-1e-12 }
	case kindShift:
		above = func(x float64) bool { return shifted(o.observed, o.baseline, x/100) }
	case kindLeak:
		return leakSeverity(t, o.observed)
	default: // kindRatio
		above = func(x float64) bool { return o.baseline > 0 && o.observed >= x*o.baseline }
		if sig == sigLatency {
			above = func(x float64) bool { return o.observed >= max(x*o.baseline, o.baseline+minLatencyDeltaMS) }
		}
	}
	if s := t.Level(above); s != "" {
		return s
	}
	// Crossing the lowest level always yields one of them; this only
	// guards a threshold with no level set.
	return configs.SeverityPage
}

// cps is the cost per priced success, in USD.
func (a *agg) cps() float64 {
	if a.okPriced == 0 {
		return 0
	}
	return a.costOK / float64(a.okPriced)
}

// evalCost evaluates cost_per_success_ratio like tokens_per_success, over
// the priced successes only (unpriced requests do not count).
func (d *detector) evalCost(cur, others, base *agg, o obs) obs {
	var oth *ratioSide
	if others != nil {
		oth = &ratioSide{others.okPriced, others.cps()}
	}
	return d.evalRatio(o, ratioSide{cur.okPriced, cur.cps()}, oth, ratioSide{base.okPriced, base.cps()}, d.cfg.costRatio)
}

// ratioSide is one side of a per-success ratio signal: how many successes
// carry the value, and the value per success.
type ratioSide struct {
	n   int64
	per float64
}

// evalRatio evaluates a per-success ratio signal (tokens, money): the
// window's value per success against the other cohorts' (others, nil when
// there are none), else the scope's earlier windows' (base); each side
// needs min_requests successes.
func (d *detector) evalRatio(o obs, cur ratioSide, others *ratioSide, base ratioSide, ratio float64) obs {
	min := d.cfg.min
	o.n = cur.n
	if cur.n == 0 {
		return o
	}
	if cur.n < min {
		o.verdict = verdictUnknown
		return o
	}
	switch {
	case others != nil && others.n >= min:
		o.baseline, o.baseKind, o.baseN = others.per, baseOthers, others.n
	case base.n >= min:
		o.baseline, o.baseKind, o.baseN = base.per, baseEarlier, base.n
	default:
		o.verdict = verdictUnknown
		return o
	}
	o.observed = cur.per
	o.threshold = ratio * o.baseline
	if o.baseline > 0 && o.observed >= o.threshold {
		o.verdict = verdictCrossing
	}
	return o
}

// raise records that the incident's signal crossed its page level after
// it opened at investigate: the incident becomes a page, the timeline says
// so, webhooks hear it, and the automatic rollback (already tried by the
// responder on f, a page) is recorded.
func (m *Manager) raise(id string, f *fire) {
	var raised, mitigated bool
	out, err := m.update(id, func(inc *Incident) bool {
		raised, mitigated = false, false
		if inc.Status == StatusResolved || inc.Severity == configs.SeverityPage {
			return false
		}
		inc.Severity = configs.SeverityPage
		inc.addEvent(Event{At: f.at.UTC(), Kind: EventSeverityRaised, Replica: m.o.Replica,
			Message: "raised from investigate to page: " + describeDetection(f, nil)})
		was := inc.Status
		m.applyRollback(inc, f)
		mitigated = was == StatusOpen && inc.Status == StatusMitigated
		raised = true
		return true
	})
	if err != nil {
		m.log.Error("raise incident severity", "incident", id, "err", err)
		return
	}
	if out == nil || !raised {
		return
	}
	m.log.Warn("incident raised to page", "incident", id, "route", f.route, "signal", f.signal, "cohort", f.cohort)
	m.hooks.enqueue(EventSeverityRaised, out, m.o.Replica, m.now())
	if mitigated {
		m.det.startAfter(f.key, *out.MitigatedAt)
		m.hooks.enqueue(EventMitigated, out, m.o.Replica, m.now())
	}
}

// severityWords is how the postmortem and the CLI say a severity.
func severityWords(s configs.Severity, class string) string {
	w := string(s)
	if w == "" {
		w = string(configs.SeverityPage)
	}
	if class != "" {
		w = fmt.Sprintf("%s (%s)", w, class)
	}
	return w
}

// fireSeverity is f's severity; a fire without one (declared by hand) is
// a page.
func fireSeverity(f *fire) configs.Severity {
	if f.severity == "" {
		return configs.SeverityPage
	}
	return f.severity
}
