package incidents

import (
	"slices"
	"time"
)

// obs is one signal evaluated on one scope.
type obs struct {
	verdict   int
	observed  float64
	threshold float64
	baseline  float64
	n, bad    int64
	baseN     int64 // requests (scores) the baseline was measured on
	baseKind  int
	// others names the other cohort when there is exactly one.
	others string
	// baseSrc describes the baseline; filled only when a signal fires,
	// so that evaluating a record never allocates.
	baseSrc string
}

func (o *obs) baseSource() string {
	switch o.baseKind {
	case baseOthers:
		if o.others != "" {
			return "cohort " + o.others + ", same window"
		}
		return "other cohorts, same window"
	case baseEarlier:
		return "earlier windows"
	case baseBefore:
		return "the same cohort before the change (under " + o.others + ")"
	}
	return ""
}

// evalCohort evaluates a cohort against the other live cohorts (or its own
// earlier windows when they lack requests).
func (d *detector) evalCohort(rd *routeDet, cd *cohortDet, live []string, sig int) obs {
	others, name := d.others(rd, cd, live, !isRateSignal(sig))
	return d.eval(sig, &cd.s.cur, &others, &cd.s.base, name)
}

// others sums the window of the route's live cohorts other than cd; hist
// also merges the latency histograms. name is the other cohort when there
// is exactly one.
func (d *detector) others(rd *routeDet, cd *cohortDet, live []string, hist bool) (others agg, name string) {
	n := 0
	for _, x := range rd.cohorts {
		if x != cd && slices.Contains(live, x.name) {
			if !hist {
				// Rates only need counts for the baseline figure.
				others.n += x.s.cur.n
				others.failed += x.s.cur.failed
				others.contract += x.s.cur.contract
				others.r429 += x.s.cur.r429
				others.guard.addAgg(&x.s.cur.guard)
			} else {
				others.addAgg(&x.s.cur)
			}
			name = x.name
			n++
		}
	}
	if n != 1 {
		name = ""
	}
	return others, name
}

// eval evaluates sig on cur. Rate signals compare with their threshold;
// ratio signals with others when it has enough requests, else with base.
func (d *detector) eval(sig int, cur, others, base *agg, othersName string) obs {
	o := obs{n: cur.n, others: othersName}
	min := d.cfg.min
	switch sig {
	case sigContract, sig429, sigError:
		o.bad = cur.bad(sig)
		o.threshold = d.cfg.rate[sig]
		if cur.n == 0 {
			return o
		}
		o.observed = float64(o.bad) / float64(cur.n)
		if o.observed < o.threshold {
			return o
		}
		if cur.n < min {
			o.verdict = verdictUnknown
			return o
		}
		o.verdict = verdictCrossing
		if others != nil && others.n > 0 {
			o.baseline, o.baseKind, o.baseN = float64(others.bad(sig))/float64(others.n), baseOthers, others.n
		} else if base.n > 0 {
			o.baseline, o.baseKind, o.baseN = float64(base.bad(sig))/float64(base.n), baseEarlier, base.n
		}
		return o
	case sigLatency:
		if cur.n == 0 {
			return o
		}
		if cur.n < min {
			o.verdict = verdictUnknown
			return o
		}
		switch {
		case others != nil && others.n >= min:
			o.baseline, o.baseKind, o.baseN = others.p99(), baseOthers, others.n
		case base.n >= min:
			o.baseline, o.baseKind, o.baseN = base.p99(), baseEarlier, base.n
		default:
			o.verdict = verdictUnknown
			return o
		}
		o.observed = cur.p99()
		o.threshold = max(d.cfg.latRatio*o.baseline, o.baseline+minLatencyDeltaMS)
		// A p99 set by two or three stragglers is noise on a busy host:
		// the signal also needs minSlowRequests above the threshold.
		if o.observed >= o.threshold && cur.above(o.threshold) >= minSlowRequests {
			o.verdict = verdictCrossing
			o.bad = cur.above(o.threshold)
		}
		return o
	case sigTokens:
		var oth *ratioSide
		if others != nil {
			oth = &ratioSide{others.ok, others.tps()}
		}
		return d.evalRatio(o, ratioSide{cur.ok, cur.tps()}, oth, ratioSide{base.ok, base.tps()}, d.cfg.tokRatio)
	case sigCost:
		return d.evalCost(cur, others, base, o)
	case sigRefusal, sigPII:
		return d.evalGuard(sig, cur, others, base, o)
	}
	return o
}

// check evaluates sig on a scope for the manager: the cohort (when it is
// still live) or the route's live traffic (cohort ""). live reports
// whether the cohort still has weight.
func (d *detector) check(route, cohort string, sig int, now time.Time) (o obs, live bool) {
	if sig == sigEval {
		return d.evals.check(d, route, cohort, now)
	}
	idx := d.index(now)
	d.mu.Lock()
	defer d.mu.Unlock()
	rd := d.routes[route]
	var lc []string
	if rd != nil {
		for _, x := range rd.cohorts {
			x.s.advance(idx)
		}
		lc = d.liveCohorts(rd)
	} else if lr, ok := d.liveRoute(route); ok {
		lc = lr.cohorts
	}
	if cohort != "" && !slices.Contains(lc, cohort) {
		return obs{}, false
	}
	if rd == nil {
		return obs{}, true
	}
	if cohort != "" && len(lc) > 1 {
		for _, x := range rd.cohorts {
			if x.name == cohort {
				return d.evalCohort(rd, x, lc, sig), true
			}
		}
		return obs{}, true
	}
	var cur, base agg
	for _, x := range rd.cohorts {
		if slices.Contains(lc, x.name) {
			cur.addAgg(&x.s.cur)
			base.addAgg(&x.s.base)
		}
	}
	return d.eval(sig, &cur, nil, &base, ""), true
}

// routeHealth evaluates every enabled rate signal and extra on the route's
// live traffic. It reports whether any crosses, and the window's request
// and failure counts.
func (d *detector) routeHealth(route string, extra int, now time.Time) (crossing bool, n, failed int64) {
	for sig := range nSignals {
		if !(isRateSignal(sig) || sig == extra) || !d.cfg.enabled(sig) && !(sig == sigEval && sig == extra) {
			continue
		}
		o, _ := d.check(route, "", sig, now)
		if sig == sigError {
			n, failed = o.n, o.bad
		}
		if o.verdict == verdictCrossing {
			crossing = true
		}
	}
	return crossing, n, failed
}
