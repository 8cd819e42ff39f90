package incidents

import (
	"slices"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// fire is a signal that crossed its threshold, with what the detector
// knew at that moment. The responder adds the state and the rollback.
type fire struct {
	key, signal, route, cohort, target string
	sig                                int
	o                                  obs
	window                             time.Duration
	at                                 time.Time
	windowStart                        time.Time
	firstFailure                       time.Time
	during, before                     []*capture.Record
	failing                            []*capture.Record // bad records in the window (≤ 200), for the layer
	seed                               scopeSnapshot
	wave                               bool   // an incident is already tracked for key
	related                            string // key of an active incident on the same cohort

	reason string // of a declared incident

	// Filled by the responder.
	state  configs.State
	rb     *rollbackResult
	rbSkip string // why an eligible-looking cohort was not rolled back

	severity configs.Severity
	class    string // "security" for signals about leaked data
	raise    bool   // the signal already fired at investigate and now crossed page
	// evalGate says what the eval gate knew (eval_drift only).
	evalGate *EvalGate
	// scored are the during samples' scores, by gateway request ID
	// (eval_drift only).
	scored map[string]float64
}

type rollbackResult struct {
	at            time.Time
	before, after configs.State
	err           error
	// prompt is set when the action was a prompt revert (to this prompt)
	// rather than a cohort rollback (issue 17).
	prompt *configs.Prompt
}

// errorsAreContract reports whether the errors other than contract
// failures in scope's window stay below the error-rate threshold o was
// judged by.
func errorsAreContract(scope *cohortDet, o obs) bool {
	if scope == nil {
		return false
	}
	other := max(scope.s.cur.failed-scope.s.cur.contract, 0)
	return float64(other) < o.threshold*float64(o.n)
}

// newFire collects the evidence for a crossing on cd (nil: the route's
// only live cohort) and starts tracking the incident's scope.
func (d *detector) newFire(rd *routeDet, cd *cohortDet, sig int, o obs, now time.Time) *fire {
	scope := cd
	if scope == nil {
		for _, x := range rd.cohorts {
			if slices.Contains(d.liveCohorts(rd), x.name) {
				scope = x
				break
			}
		}
	}
	o.baseSrc = o.baseSource()
	f := &fire{
		sig: sig, signal: signalName(sig), route: rd.name, o: o,
		window: d.cfg.window, at: now, windowStart: now.Add(-d.cfg.window),
	}
	f.key = incidentKey(rd.name, f.signal)
	f.class = incidentClass(sig)
	if cd != nil {
		f.cohort = cd.name
	}
	pred := predicateFor(sig, o)
	if scope != nil {
		f.target = d.worstTarget(scope, sig, o.threshold)
		d.collect(rd, scope, pred, f)
	}
	if f.firstFailure.IsZero() {
		f.firstFailure = f.windowStart
	}

	if t := d.trackers[f.key]; t != nil {
		f.wave = true
		return f
	}
	for _, t := range rd.trackers {
		if t.signal == f.signal {
			continue
		}
		// The error rate counts contract failures too: when they alone
		// make it cross, it is the open contract incident's failure seen
		// again (on any cohort), not a second incident (issue 14.8).
		if t.cohort == f.cohort || sig == sigError && t.signal == SignalContractFailureRate && errorsAreContract(scope, o) {
			f.related = t.key
			return f
		}
	}
	t := d.newTracker(rd, f.key, f.signal, f.cohort, pred, f.windowStart)
	d.seed(rd, t)
	f.seed = t.snapshot()
	return f
}

// worstTarget names the scope's target with the most bad records (rate
// signals), the highest p99 or the most tokens per success.
func (d *detector) worstTarget(cd *cohortDet, sig int, thr float64) string {
	var best *targetDet
	var bestV float64 = -1
	for _, t := range cd.targets {
		if t.s.cur.n == 0 {
			continue
		}
		var v float64
		switch sig {
		case sigLatency:
			v = t.s.cur.p99()
		case sigTokens:
			v = t.s.cur.tps()
		case sigCost:
			v = t.s.cur.cps()
		default:
			v = float64(t.s.cur.bad(sig))
		}
		if v > bestV {
			best, bestV = t, v
		}
	}
	if best == nil {
		return ""
	}
	return best.name()
}

// collect fills the fire's first failure, during/before samples and
// failing records from the scope's window.
func (d *detector) collect(rd *routeDet, cd *cohortDet, p predicate, f *fire) {
	if isRateSignal(p.sig) {
		var before []*capture.Record
		cd.s.inWindow(func(b *bucket) {
			if t := b.firstBad[p.sig]; !t.IsZero() && (f.firstFailure.IsZero() || t.Before(f.firstFailure)) {
				f.firstFailure = t
			}
			for _, r := range b.bad {
				if !p.matchRecord(r) {
					continue
				}
				if before == nil && len(b.before) > 0 {
					before = b.before
				}
				if len(f.during) < samplesPerPhase {
					f.during = append(f.during, r)
				}
				if len(f.failing) < 200 {
					f.failing = append(f.failing, r)
				}
			}
		})
		for _, r := range before {
			if r.ReceivedAt.Before(f.firstFailure) || f.firstFailure.IsZero() {
				f.before = append(f.before, r)
			}
		}
		return
	}
	for _, r := range cd.s.recentRecords() {
		if !p.matchRecord(r) || r.ReceivedAt.Before(f.windowStart) {
			continue
		}
		if f.firstFailure.IsZero() || r.ReceivedAt.Before(f.firstFailure) {
			f.firstFailure = r.ReceivedAt
		}
		if len(f.during) < samplesPerPhase {
			f.during = append(f.during, r)
		}
		f.failing = append(f.failing, r)
	}
	for _, r := range rd.appendSuccesses(nil) {
		if f.firstFailure.IsZero() || r.ReceivedAt.Before(f.firstFailure) {
			f.before = append(f.before, r)
		}
	}
}

// predicate says whether a record is bad for a signal. thr is the latency
// (ms) or tokens threshold of ratio signals.
type predicate struct {
	sig int
	thr float64
	// down: a refusal_rate incident whose rate fell; its bad records are
	// the answers that were not refusals.
	down bool
}

func (p predicate) matchRecord(r *capture.Record) bool {
	c, ok := classify(r)
	return ok && p.match(r, &c)
}

// predicateFor is the predicate of an incident fired by sig on o.
func predicateFor(sig int, o obs) predicate {
	return predicate{sig: sig, thr: o.threshold, down: sig == sigRefusal && o.observed < o.baseline}
}

func (p predicate) match(r *capture.Record, c *class) bool {
	switch p.sig {
	case sigContract:
		return c.contract
	case sig429:
		return c.r429
	case sigError:
		return c.failed
	case sigLatency:
		return r.LatencyMS >= p.thr
	case sigTokens:
		return c.ok && float64(c.tokens) >= p.thr
	case sigCost:
		return c.ok && c.priced && c.cost >= p.thr
	case sigEval:
		return false // a score, not a record, is bad: see evalDet
	case sigRefusal, sigPII:
		return matchGuard(p.sig, r, c, p.down)
	}
	return c.failed || c.contract || c.r429
}

// declared builds the fire of an incident declared by hand on route, from
// whatever the route's windows hold now.
func (d *detector) declared(route string, now time.Time) *fire {
	f := &fire{
		sig: sigDeclared, signal: SignalDeclared, route: route, window: d.cfg.window,
		at: now, windowStart: now.Add(-d.cfg.window),
	}
	f.key = incidentKey(route, f.signal)
	idx := d.index(now)
	d.mu.Lock()
	defer d.mu.Unlock()
	rd := d.routes[route]
	if rd == nil {
		f.firstFailure = now
		return f
	}
	p := predicate{sig: sigDeclared}
	byTarget := map[string]int{}
	for _, c := range rd.cohorts {
		c.s.advance(idx)
		f.o.n += c.s.cur.n
		c.s.inWindow(func(b *bucket) {
			for _, t := range b.firstBad {
				if !t.IsZero() && (f.firstFailure.IsZero() || t.Before(f.firstFailure)) {
					f.firstFailure = t
				}
			}
			if len(b.bad) > 0 && len(f.before) == 0 {
				f.before = append(f.before, b.before...)
			}
			for _, r := range b.bad {
				f.o.bad++
				byTarget[r.Provider+"/"+modelLabel(r.Target, r.Provider, r.Model)]++
				if len(f.failing) < 200 {
					f.failing = append(f.failing, r)
				}
			}
		})
	}
	slices.SortStableFunc(f.failing, func(x, y *capture.Record) int { return x.ReceivedAt.Compare(y.ReceivedAt) })
	f.during = slices.Clone(f.failing[:min(len(f.failing), samplesPerPhase)])
	if f.o.n > 0 {
		f.o.observed = float64(f.o.bad) / float64(f.o.n)
	}
	best := 0
	for t, n := range byTarget {
		if n > best || n == best && t < f.target {
			f.target, best = t, n
		}
	}
	if f.firstFailure.IsZero() {
		f.firstFailure = now
		f.before = rd.appendSuccesses(nil)
	}
	if d.trackers[f.key] != nil {
		f.wave = true
		return f
	}
	t := d.newTracker(rd, f.key, f.signal, "", p, f.windowStart)
	d.seed(rd, t)
	f.seed = t.snapshot()
	return f
}

// failedOver returns the record's first upstream attempt when it failed
// (5xx, timeout, connect error, broken contract in enforce mode) and a later
// attempt served the client.
func failedOver(r *capture.Record) (capture.Attempt, bool) {
	if len(r.Attempts) < 2 {
		return capture.Attempt{}, false
	}
	a := r.Attempts[0]
	if a.Status == 429 {
		return capture.Attempt{}, false // counted by the 429 signal
	}
	if a.Status >= 500 || a.Error != "" || a.Contract == capture.VerdictFail {
		return a, true
	}
	return capture.Attempt{}, false
}
