package incidents

import (
	"fmt"
	"math"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// The guardrail signals of issue 16: what the model says, not whether it
// answered. refusal_rate fires on a shift of a cohort's refusal rate in
// either direction against its baseline; pii_leak_rate fires while the
// share of responses leaking personal data or secrets stays above its
// threshold (default 0: any sustained leak).
const (
	SignalRefusalRate = "refusal_rate"
	SignalPIILeakRate = "pii_leak_rate"
)

// minLeaks is how many leaking responses a window needs before the PII
// signal fires: one leak alone is an anecdote (a model echoing an example
// address), two in one window are a pattern. The record and the metric
// still count every leak.
const minLeaks = 2

// guardConfig holds the guardrail signals' thresholds: their rows of the
// signal table (signals.go), defaults applied.
type guardConfig struct {
	refusal configs.Threshold // points; page < 0 disables
	pii     configs.Threshold // fraction; page < 0 disables
}

func (g *guardConfig) enabled(sig int) bool {
	switch sig {
	case sigRefusal:
		return !(g.refusal.Page < 0 && g.refusal.Investigate <= 0) && g.refusal.Lowest() > 0
	case sigPII:
		return !(g.pii.Page < 0 && g.pii.Investigate <= 0)
	}
	return false
}

// refusalPoints is the smallest shift, as a fraction, that fires.
func (g *guardConfig) refusalPoints() float64 { return g.refusal.Lowest() / 100 }

// piiRate is the leak rate that must be exceeded: the lowest level set
// (investigate when set, else page; 0 when page is 0).
func (g *guardConfig) piiRate() float64 {
	if g.pii.Investigate > 0 {
		return g.pii.Investigate
	}
	return max(g.pii.Page, 0)
}

// guardAgg counts a set of records for the guardrail signals.
type guardAgg struct {
	refusal, pii int64
}

func (a *guardAgg) add(c *class) {
	if c.refusal {
		a.refusal++
	}
	if c.pii {
		a.pii++
	}
}

func (a *guardAgg) addAgg(b *guardAgg) { a.refusal += b.refusal; a.pii += b.pii }
func (a *guardAgg) subAgg(b *guardAgg) { a.refusal -= b.refusal; a.pii -= b.pii }

// classifyGuard fills the guardrail part of a record's class.
func classifyGuard(r *capture.Record, c *class) {
	c.refusal = r.Refusal
	c.pii = len(r.PIILeak) > 0
}

// evalGuard evaluates a guardrail signal on cur against others (the other
// live cohorts, same window) or base (cur's scope, earlier windows).
func (d *detector) evalGuard(sig int, cur, others, base *agg, o obs) obs {
	g := &d.cfg.guard
	min := d.cfg.min
	if cur.n == 0 {
		return o
	}
	switch sig {
	case sigPII:
		o.bad = cur.guard.pii
		o.threshold = g.piiRate()
		o.observed = float64(o.bad) / float64(cur.n)
		if o.observed <= o.threshold || o.bad < minLeaks {
			return o
		}
		if cur.n < min {
			o.verdict = verdictUnknown
			return o
		}
		o.verdict = verdictCrossing
		if others != nil && others.n > 0 {
			o.baseline, o.baseKind = float64(others.guard.pii)/float64(others.n), baseOthers
		} else if base.n > 0 {
			o.baseline, o.baseKind = float64(base.guard.pii)/float64(base.n), baseEarlier
		}
		return o
	case sigRefusal:
		o.bad = cur.guard.refusal
		o.observed = float64(o.bad) / float64(cur.n)
		if cur.n < min {
			o.verdict = verdictUnknown
			return o
		}
		switch {
		case others != nil && others.n >= min:
			o.baseline, o.baseKind = float64(others.guard.refusal)/float64(others.n), baseOthers
		case base.n >= min:
			o.baseline, o.baseKind = float64(base.guard.refusal)/float64(base.n), baseEarlier
		default:
			o.verdict = verdictUnknown
			return o
		}
		pts := g.refusalPoints()
		o.threshold = o.baseline + pts
		if o.observed < o.baseline {
			// A drop counts too: a canary that stopped refusing what the
			// stable cohort refuses lost a guardrail.
			o.threshold = max(o.baseline-pts, 0)
		}
		if shifted(o.observed, o.baseline, pts) {
			o.verdict = verdictCrossing
		}
		return o
	}
	return o
}

// shifted reports whether rate moved at least pts (a fraction) away from
// base, either way. Rounded to a hundredth of a point so that 20%-10%
// crossing 10 points is not lost to float error.
func shifted(rate, base, pts float64) bool {
	return math.Round(math.Abs(rate-base)*1e4) >= math.Round(pts*1e4)
}

// leakSeverity is the level a PII leak rate reached: page above the page
// level (0, the default, included), else investigate above a set
// investigate level. evalGuard only fires above the lowest of them.
func leakSeverity(t configs.Threshold, rate float64) configs.Severity {
	if t.Page >= 0 && rate > t.Page {
		return configs.SeverityPage
	}
	if t.Investigate > 0 && rate > t.Investigate {
		return configs.SeverityInvestigate
	}
	return configs.SeverityPage // a crossing of an unset level: see severity
}

// matchGuard says whether a record is bad for a guardrail signal. A
// refusal incident whose rate dropped (thr below the baseline it fired
// on) counts the answers that were not refusals.
func matchGuard(sig int, r *capture.Record, c *class, down bool) bool {
	switch sig {
	case sigRefusal:
		if down {
			return c.ok && !c.refusal
		}
		return c.refusal
	case sigPII:
		return c.pii
	}
	return false
}

// incidentClass is the class an incident opened by sig carries.
func incidentClass(sig int) string {
	if sig == sigPII {
		return ClassSecurity
	}
	return ""
}

// guardWords names a guardrail signal's value and what its bad requests
// did, for rateWords.
func guardWords(signal string) (name, bad string, ok bool) {
	switch signal {
	case SignalRefusalRate:
		return "refusal rate", "were refusals", true
	case SignalPIILeakRate:
		return "PII leak rate", "leaked personal data or secrets that the request did not hold", true
	}
	return "", "", false
}

// guardSymptom is the incident's sentence for a guardrail signal.
func guardSymptom(f *fire, tr *Trigger) (string, bool) {
	from := who(tr.Cohort, tr.Target)
	win := fmtDur(f.window)
	switch f.sig {
	case sigRefusal:
		dir := "rose"
		if f.o.observed < f.o.baseline {
			dir = "fell"
		}
		return fmt.Sprintf("the refusal rate of %s on route %s %s to %s in the last %s (%d of %d responses were refusals) against a baseline of %s, a shift of %.1f points (threshold %g points)",
			from, tr.Route, dir, pct(f.o.observed), win, tr.Failed, tr.Requests, pct(f.o.baseline),
			100*math.Abs(f.o.observed-f.o.baseline), 100*math.Abs(f.o.threshold-f.o.baseline)), true
	case sigPII:
		return fmt.Sprintf("%d of %d responses from %s on route %s leaked personal data or secrets that their requests did not hold, in the last %s (PII leak rate %s, threshold %s); the records name the detectors, never the values",
			tr.Failed, tr.Requests, from, tr.Route, win, pct(f.o.observed), pct(f.o.threshold)), true
	}
	return "", false
}

// guardDetection describes a guardrail signal's crossing on scope, with
// the severity it reached (a timeline's detection or raise).
func guardDetection(f *fire, scope string) string {
	if f.sig == sigRefusal {
		return fmt.Sprintf("refusal rate of %s shifted %.1f points from its baseline, %s to %s: %d of %d responses in %s were refusals (%s severity)",
			scope, 100*math.Abs(f.o.observed-f.o.baseline), pct(f.o.baseline), pct(f.o.observed), f.o.bad, f.o.n, fmtDur(f.window), fireSeverity(f))
	}
	return fmt.Sprintf("PII leak rate of %s is %s, above %s: %d of %d responses in %s leaked personal data or secrets (%s severity)",
		scope, pct(f.o.observed), pct(f.o.threshold), f.o.bad, f.o.n, fmtDur(f.window), fireSeverity(f))
}

// guardObserved says how a guardrail signal stands once it no longer
// crosses (a mitigation's reason).
func guardObserved(sig int, obs, thr float64) (string, bool) {
	switch sig {
	case sigRefusal:
		return fmt.Sprintf("refusal rate %s, back within the threshold of its baseline", pct(obs)), true
	case sigPII:
		return fmt.Sprintf("PII leak rate %s, at most %s or fewer than %d leaking answers in the window", pct(obs), pct(thr), minLeaks), true
	}
	return "", false
}

// guardLayer says where a guardrail incident most likely started.
func guardLayer(sig int, changed bool) (layer, reason string, ok bool) {
	switch sig {
	case sigRefusal:
		if changed {
			return LayerRouting, "the refusal rate shifted and the route's prompt, targets or flags changed shortly before", true
		}
		return LayerProvider, "the refusal rate shifted with no change to the route: the model answers differently", true
	case sigPII:
		if changed {
			return LayerRouting, "answers started carrying personal data after the route's prompt, targets or flags changed", true
		}
		return LayerProvider, "answers carry personal data with no change to the route: the model discloses it", true
	}
	return "", "", false
}
