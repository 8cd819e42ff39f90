package incidents

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// Issue 16.2: eval_drift. Scores posted to /admin/scores arrive joined to
// their request's route and cohort. For each route, cohort and score name
// the detector keeps the rolling mean over detection.eval.window (in
// buckets, like the record windows) and its earlier windows; a cohort
// fires when its mean falls detection.eval.drop_points below its baseline:
// the route's other live cohorts in the same window, else the cohort's own
// earlier windows (the time before the change that made it drift). Both
// sides need detection.eval.min_scores.

// lowPerBucket is how many lowest scores a bucket keeps for the "during"
// samples.
const lowPerBucket = samplesPerPhase

// maxVersionsPerCohort bounds the prompt version/release pairs counted
// per cohort for the eval gate.
const maxVersionsPerCohort = 64

// evalConfig is configs.Eval with defaults applied.
type evalConfig struct {
	window   time.Duration
	width    int64 // bucket width, ns
	nb       int64
	min      int64
	drop     configs.Threshold // points
	point    float64           // one point, in scale units
	scale    [2]float64
	names    map[string]bool // nil: every name
	lookback time.Duration
}

func newEvalConfig(e configs.Eval, lookback time.Duration) evalConfig {
	c := evalConfig{window: e.Window.D(), min: int64(e.MinScores), drop: e.DropPoints, nb: bucketsPerWindow, lookback: lookback}
	if c.window <= 0 {
		c.window = 10 * time.Minute
	}
	if c.min <= 0 {
		c.min = 30
	}
	if c.drop == (configs.Threshold{}) {
		c.drop = configs.Threshold{Investigate: 2, Page: 5}
	}
	c.scale = [2]float64{0, 1}
	if len(e.Scale) == 2 && e.Scale[0] < e.Scale[1] {
		c.scale = [2]float64{e.Scale[0], e.Scale[1]}
	}
	c.point = (c.scale[1] - c.scale[0]) / 100
	if len(e.Names) > 0 {
		c.names = map[string]bool{}
		for _, n := range e.Names {
			c.names[n] = true
		}
	}
	if c.lookback <= 0 {
		c.lookback = 24 * time.Hour
	}
	c.width = max(int64(c.window)/c.nb, 1)
	return c
}

type evalRoute struct {
	series []*evalSeries
	// versions counts, per cohort, the scores received for each prompt
	// version and release: the eval gate's "scored before the change".
	versions map[string]map[string]int64
	latest   map[string]string // cohort → the version of its latest score
}

// evalDet holds the score windows. Its methods are safe for concurrent
// use (scores arrive on admin request goroutines).
type evalDet struct {
	cfg    evalConfig
	mu     sync.Mutex
	routes map[string]*evalRoute
}

func newEvalDet(c evalConfig) *evalDet { return &evalDet{cfg: c, routes: map[string]*evalRoute{}} }

func (e *evalDet) route(name string) *evalRoute {
	r := e.routes[name]
	if r == nil {
		r = &evalRoute{versions: map[string]map[string]int64{}, latest: map[string]string{}}
		e.routes[name] = r
	}
	return r
}

func (e *evalDet) series(er *evalRoute, cohort, name string) *evalSeries {
	for _, s := range er.series {
		if s.cohort == cohort && s.name == name {
			return s
		}
	}
	s := newEvalSeries(cohort, name, e.cfg.nb)
	er.series = append(er.series, s)
	return s
}

// evalCross is a crossing found under e.mu, turned into a fire under the
// detector's lock.
type evalCross struct {
	route, cohort, name, target string
	o                           obs
	severity                    configs.Severity
	raise                       bool
	low                         []lowScore
	first                       time.Time
	gate                        EvalGate
}

// EvalGate is what the eval gate knew when eval_drift fired: the
// postmortem's "why the checks missed it" speaks from it (issue 16.5).
type EvalGate struct {
	// Name is the score name that drifted.
	Name string `json:"name"`
	// Scale is detection.eval.scale; Point one point of it.
	Scale [2]float64 `json:"scale"`
	Point float64    `json:"point"`
	// DropPoints is the observed drop; Investigate and Page the
	// thresholds in force, in points; MinScores the scores each side
	// needs.
	DropPoints  float64 `json:"drop_points"`
	Investigate float64 `json:"investigate_points,omitempty"`
	Page        float64 `json:"page_points,omitempty"`
	MinScores   int64   `json:"min_scores"`
	// CohortScores and BaselineScores are the scores in the window on
	// each side.
	CohortScores   int64 `json:"cohort_scores"`
	BaselineScores int64 `json:"baseline_scores"`
	// ScoredBefore is how many of the failing cohort's requests were
	// scored under earlier prompt versions or releases (before the
	// change now live); Version is the one now live.
	ScoredBefore int64  `json:"scored_before"`
	Version      string `json:"version,omitempty"`
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// observeScores adds scores and returns the crossings they caused. live
// returns a route's live cohorts (nil when unknown).
func (e *evalDet) observeScores(scores []capture.Score, now time.Time, live func(route string) []string) []evalCross {
	idx := now.UnixNano() / e.cfg.width
	e.mu.Lock()
	defer e.mu.Unlock()
	type key struct{ route, name string }
	touched := map[key]bool{}
	for i := range scores {
		sc := &scores[i]
		if sc.Late || sc.Route == "" || e.cfg.names != nil && !e.cfg.names[sc.Name] {
			continue
		}
		if now.Sub(sc.RequestAt) > e.cfg.lookback {
			continue
		}
		cohort := sc.Cohort
		if cohort == "" {
			cohort = configs.DefaultCohort
		}
		er := e.route(sc.Route)
		s := e.series(er, cohort, sc.Name)
		s.advance(idx)
		s.add(sc, now)
		v := er.versions[cohort]
		if v == nil {
			v = map[string]int64{}
			er.versions[cohort] = v
		}
		ver := versionKey(sc)
		if v[ver] > 0 || len(v) < maxVersionsPerCohort {
			v[ver]++
		}
		er.latest[cohort] = ver
		touched[key{sc.Route, sc.Name}] = true
	}
	var out []evalCross
	for k := range touched {
		er := e.routes[k.route]
		lc := live(k.route)
		for _, s := range er.series {
			if s.name != k.name {
				continue
			}
			s.advance(idx)
		}
		for _, s := range er.series {
			if s.name != k.name || (lc != nil && !slices.Contains(lc, s.cohort)) {
				continue
			}
			o, others := e.eval(er, s, lc, now)
			switch o.verdict {
			case verdictBelow:
				s.firing, s.level = false, ""
				continue
			case verdictUnknown:
				continue
			}
			sev := e.severity(o)
			c := evalCross{route: k.route, cohort: s.cohort, name: s.name, target: s.target, o: o, severity: sev}
			switch {
			case !s.firing:
				s.firing, s.level = true, sev
			case s.level == configs.SeverityInvestigate && sev == configs.SeverityPage:
				s.level, c.raise = sev, true
			default:
				continue
			}
			if len(lc) <= 1 {
				c.cohort = "" // the route's only cohort: the route as a whole
			}
			c.low = s.lowest(samplesPerPhase)
			c.first = s.firstBelow(o.threshold)
			c.gate = e.gate(er, s, o, others)
			out = append(out, c)
		}
	}
	return out
}

// eval judges one series against its baseline.
func (e *evalDet) eval(er *evalRoute, s *evalSeries, live []string, now time.Time) (o obs, others evalAgg) {
	o = obs{n: s.cur.n, observed: s.cur.mean()}
	var name string
	k := 0
	for _, x := range er.series {
		if x != s && x.name == s.name && (live == nil || slices.Contains(live, x.cohort)) {
			others.n += x.cur.n
			others.sum += x.cur.sum
			name = x.cohort
			k++
		}
	}
	if k == 1 {
		o.others = name
	}
	if s.cur.n < e.cfg.min {
		o.verdict = verdictUnknown
		return o, others
	}
	switch {
	case others.n >= e.cfg.min:
		o.baseline, o.baseKind, o.baseN = others.mean(), baseOthers, others.n
	case e.before(s, now) != nil:
		ver, v := e.beforeVersion(s, now)
		o.baseline, o.baseKind, o.baseN, o.others = v.mean(), baseBefore, v.n, ver
		others = v.evalAgg
	case s.base.n >= e.cfg.min:
		o.baseline, o.baseKind, o.baseN = s.base.mean(), baseEarlier, s.base.n
		others = s.base
	default:
		o.verdict = verdictUnknown
		return o, others
	}
	o.threshold = o.baseline - e.cfg.drop.Lowest()*e.cfg.point
	o.bad = 0
	if o.observed <= o.threshold+1e-12 {
		o.verdict = verdictCrossing
	}
	return o, others
}

func (e *evalDet) severity(o obs) configs.Severity {
	drop := (o.baseline - o.observed) / e.cfg.point
	if s := e.cfg.drop.Level(func(x float64) bool { return drop >= x-1e-9 }); s != "" {
		return s
	}
	return configs.SeverityPage
}

func (e *evalDet) gate(er *evalRoute, s *evalSeries, o obs, others evalAgg) EvalGate {
	g := EvalGate{Name: s.name, Scale: e.cfg.scale, Point: e.cfg.point,
		DropPoints: round((o.baseline - o.observed) / e.cfg.point), Investigate: e.cfg.drop.Investigate, Page: e.cfg.drop.Page,
		MinScores: e.cfg.min, CohortScores: s.cur.n, BaselineScores: others.n}
	// The version of the cohort's latest score is the one now live; the
	// scores of the others came before the change.
	g.Version = er.latest[s.cohort]
	for v, n := range er.versions[s.cohort] {
		if v != g.Version {
			g.ScoredBefore += n
		}
	}
	return g
}

// check evaluates eval_drift on a scope for the manager's mitigation: the
// cohort's (or the route's) worst score name now.
func (e *evalDet) check(d *detector, route, cohort string, now time.Time) (obs, bool) {
	lr, known := d.liveRoute(route)
	if known && cohort != "" && !slices.Contains(lr.cohorts, cohort) {
		return obs{}, false
	}
	idx := now.UnixNano() / e.cfg.width
	e.mu.Lock()
	defer e.mu.Unlock()
	er := e.routes[route]
	if er == nil {
		return obs{}, true
	}
	var lc []string
	if known {
		lc = lr.cohorts
	}
	var worst obs
	found := false
	for _, s := range er.series {
		s.advance(idx)
	}
	for _, s := range er.series {
		if cohort != "" && s.cohort != cohort || lc != nil && !slices.Contains(lc, s.cohort) {
			continue
		}
		o, _ := e.eval(er, s, lc, now)
		if o.verdict == verdictUnknown {
			continue
		}
		if !found || o.verdict == verdictCrossing && worst.verdict != verdictCrossing {
			worst, found = o, true
		}
	}
	return worst, true
}

func (e *evalDet) resetFiring(route string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if er := e.routes[route]; er != nil {
		for _, s := range er.series {
			s.firing, s.level = false, ""
		}
	}
}

// evalFire builds the fire of an eval crossing: samples are the window's
// lowest-scored requests (found through lookup) with their scores.
func (d *detector) evalFire(c *evalCross, now time.Time, lookup func(id string) *capture.Record) *fire {
	o := c.o
	o.baseSrc = o.baseSource()
	f := &fire{
		sig: sigEval, signal: SignalEvalDrift, route: c.route, cohort: c.cohort, target: c.target, o: o,
		window: d.cfg.eval.window, at: now, windowStart: now.Add(-d.cfg.eval.window),
		severity: c.severity, raise: c.raise, scored: map[string]float64{},
	}
	gate := c.gate
	f.evalGate = &gate
	f.key = incidentKey(c.route, f.signal)
	f.firstFailure = c.first
	if f.firstFailure.IsZero() {
		f.firstFailure = f.windowStart
	}
	for _, l := range c.low {
		f.scored[l.id] = l.value
		if lookup == nil {
			continue
		}
		if r := lookup(l.id); r != nil {
			f.during = append(f.during, r)
			f.failing = append(f.failing, r)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rd := d.route(c.route)
	for _, r := range rd.appendSuccesses(nil) {
		if r.ReceivedAt.Before(f.firstFailure) {
			f.before = append(f.before, r)
		}
	}
	if t := d.trackers[f.key]; t != nil {
		f.wave = true
		return f
	}
	for _, t := range rd.trackers {
		if t.signal != f.signal && t.cohort == f.cohort && f.cohort != "" {
			f.related = t.key
			return f
		}
	}
	t := d.newTracker(rd, f.key, f.signal, f.cohort, predicate{sig: sigEval, thr: o.threshold}, f.windowStart)
	d.seed(rd, t)
	f.seed = t.snapshot()
	return f
}

// ObserveScores feeds eval scores (joined to their requests by capture)
// to the eval_drift signal. Late scores (Score.Late, or a request older
// than detection.lookback) and names outside detection.eval.names are
// ignored. It runs on the caller's goroutine, does no I/O beyond lookups
// of the lowest-scored requests in capture's memory when a signal fires,
// and hands fires to the responder without blocking.
func (m *Manager) ObserveScores(scores []capture.Score) {
	if m.cfg.disabled || len(scores) == 0 {
		return
	}
	now := m.now()
	crosses := m.det.evals.observeScores(scores, now, func(route string) []string {
		if lr, ok := m.det.liveRoute(route); ok {
			return lr.cohorts
		}
		return nil
	})
	for i := range crosses {
		f := m.det.evalFire(&crosses[i], now, m.o.Lookup)
		if !f.raise {
			m.det.fired.Add(1)
		}
		select {
		case m.fires <- f:
		default:
			m.droppedFires.Add(1)
		}
	}
}

// sampleScores lists an eval fire's lowest scores, lowest first.
func sampleScores(f *fire) []SampleScore {
	if len(f.scored) == 0 {
		return nil
	}
	name := ""
	if f.evalGate != nil {
		name = f.evalGate.Name
	}
	out := make([]SampleScore, 0, len(f.scored))
	for id, v := range f.scored {
		out = append(out, SampleScore{RequestID: id, Name: name, Value: v})
	}
	slices.SortFunc(out, func(a, b SampleScore) int {
		switch {
		case a.Value < b.Value:
			return -1
		case a.Value > b.Value:
			return 1
		}
		return strings.Compare(a.RequestID, b.RequestID)
	})
	return out
}

// before returns the scores of the series' most recent earlier version
// (prompt version and release) with at least min_scores within the
// lookback, or nil.
func (e *evalDet) before(s *evalSeries, now time.Time) *versionAgg {
	_, v := e.beforeVersion(s, now)
	return v
}

func (e *evalDet) beforeVersion(s *evalSeries, now time.Time) (string, *versionAgg) {
	var best *versionAgg
	var name string
	for k, v := range s.versions {
		if k == s.current || v.n < e.cfg.min || now.Sub(v.last) > e.cfg.lookback {
			continue
		}
		if best == nil || v.last.After(best.last) {
			best, name = v, k
		}
	}
	return name, best
}
