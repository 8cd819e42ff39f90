package incidents

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// Signals, in the order they are evaluated for one record: when several
// cross at once, the more specific one opens the incident and the others
// join it as related signals.
const (
	sigContract = iota
	sig429
	sigError
	sigLatency
	sigTokens
	sigCost    // cost_per_success_ratio: tokens_per_success in money
	sigEval    // eval_drift: fed by scores, not records (signal_eval.go)
	sigRefusal // refusal_rate (signal_guardrails.go)
	sigPII     // pii_leak_rate (signal_guardrails.go)
	nSignals
	sigDeclared = nSignals // an incident declared by hand
)

// Signal names as they appear in Trigger.Signal.
const (
	SignalContractFailureRate = "contract_failure_rate"
	SignalUpstream429Rate     = "upstream_429_rate"
	SignalErrorRate           = "error_rate"
	SignalLatencyP99          = "latency_p99"
	SignalTokensPerSuccess    = "tokens_per_success"
	SignalCostPerSuccess      = "cost_per_success_ratio"
	SignalEvalDrift           = "eval_drift"
	SignalDeclared            = "declared"
)

func signalIndex(name string) int {
	for i := range nSignals {
		if signalName(i) == name {
			return i
		}
	}
	return sigDeclared
}

func isRateSignal(sig int) bool { return sig <= sigError }

const (
	// bucketsPerWindow is the resolution of a window: 30 buckets, so a 30s
	// window slides in 1s steps.
	bucketsPerWindow = 30
	// baselineWindows is how many earlier windows form a scope's own
	// baseline (the "route's earlier windows").
	baselineWindows = 3
	// minLatencyDeltaMS keeps p99 noise on very fast routes (2 ms → 5 ms)
	// from firing the latency signal: p99 must also exceed the baseline by
	// this much.
	minLatencyDeltaMS = 20
	// minSlowRequests is how many requests above the latency threshold the
	// latency signal needs in its window.
	minSlowRequests = 5
	// maxBadPerBucket bounds the failing records a bucket keeps for
	// samples and scope (so a window pins at most 30×128 records per
	// cohort); counts stay exact beyond it.
	maxBadPerBucket = 128
	// recentPerSeries is how many latest records a cohort keeps for the
	// latency and token samples.
	recentPerSeries = 32
	// samplesPerPhase is the number of before/during/after samples.
	samplesPerPhase = 5
	// maxScopeKeys bounds the by_key/by_client/by_target maps of one
	// incident; further values count under "(other)".
	maxScopeKeys = 1000
)

// Latency histogram: bucket i holds latencies in (2^((i-1)/4), 2^(i/4)] ms,
// i.e. 19% wide, from 1 ms to 2^18 ms (≈262 s); the last bucket is overflow.
const (
	nLat        = 74
	latOverflow = nLat - 1
)

type routeDet struct {
	name    string
	cohorts []*cohortDet
	firing  [nSignals]bool
	level   [nSignals]configs.Severity
	// succ is a ring of the route's last successes (for "before" samples).
	succ     [samplesPerPhase]*capture.Record
	succPos  int
	trackers []*tracker
}

func (rd *routeDet) pushSuccess(r *capture.Record) {
	rd.succ[rd.succPos] = r
	rd.succPos = (rd.succPos + 1) % samplesPerPhase
}

// appendSuccesses appends the route's last successes, oldest first.
func (rd *routeDet) appendSuccesses(dst []*capture.Record) []*capture.Record {
	for i := range samplesPerPhase {
		if r := rd.succ[(rd.succPos+i)%samplesPerPhase]; r != nil {
			dst = append(dst, r)
		}
	}
	return dst
}

type cohortDet struct {
	name    string
	s       *series
	targets []*targetDet
	firing  [nSignals]bool
	level   [nSignals]configs.Severity // the severity the firing signal reached
}

type targetDet struct {
	provider, model string
	s               *series
}

func (t *targetDet) name() string { return t.provider + "/" + t.model }

// liveRoute is what the detector needs from the live state of one route.
type liveRoute struct {
	cohorts      []string // cohorts with live weight, in target order
	autoRollback bool
}

// detConfig is configs.Detection with defaults applied and buckets sized.
type detConfig struct {
	window    time.Duration
	width     int64 // bucket width in ns
	nb        int64
	min       int64
	rate      [3]float64 // by sigContract, sig429, sigError; <= 0 disables
	latRatio  float64    // <= 1 disables
	tokRatio  float64
	costRatio float64
	eval      evalConfig
	lookback  time.Duration
	disabled  bool
	// thr holds each signal's two severity levels (index sig); the
	// crossing thresholds above are their lowest set level.
	thr   [nSignals]configs.Threshold
	guard guardConfig // refusal_rate and pii_leak_rate, from thr
}

func newDetConfig(d configs.Detection) detConfig {
	c := detConfig{
		window:   d.Window.D(),
		min:      int64(d.MinRequests),
		lookback: d.Lookback.D(),
		disabled: d.Disabled,
		nb:       bucketsPerWindow,
	}
	if c.window <= 0 {
		c.window = 30 * time.Second
	}
	if c.min <= 0 {
		c.min = 20
	}
	if c.lookback <= 0 {
		c.lookback = 24 * time.Hour
	}
	c.thr = thresholds(&d)
	for _, sig := range []int{sigContract, sig429, sigError} {
		c.rate[sig] = c.thr[sig].Lowest()
	}
	c.latRatio = c.thr[sigLatency].Lowest()
	c.tokRatio = c.thr[sigTokens].Lowest()
	c.costRatio = c.thr[sigCost].Lowest()
	c.eval = newEvalConfig(d.Eval, d.Lookback.D())
	c.eval.drop = c.thr[sigEval]
	c.guard = guardConfig{refusal: c.thr[sigRefusal], pii: c.thr[sigPII]}
	c.width = int64(c.window) / c.nb
	if c.width <= 0 {
		c.width = 1
	}
	return c
}

func (c *detConfig) enabled(sig int) bool {
	switch sig {
	case sigLatency:
		return c.latRatio > 1
	case sigTokens:
		return c.tokRatio > 1
	case sigCost:
		return c.costRatio > 1
	case sigEval:
		return false // evaluated on scores (evalDet), never on records
	case sigRefusal, sigPII:
		return c.guard.enabled(sig)
	}
	return c.rate[sig] > 0
}

// detector holds the sliding windows of every route, cohort and target,
// the edge state of each signal and the trackers of open incidents. Its
// methods are safe for concurrent use; observe is meant for one writer
// goroutine and takes one mutex that only the manager's tick shares.
type detector struct {
	cfg  detConfig
	live atomic.Pointer[map[string]liveRoute]

	evals *evalDet // eval_drift, on scores; its own lock

	mu       sync.Mutex
	routes   map[string]*routeDet
	trackers map[string]*tracker // by incident key (route + signal)
	fired    atomic.Int64
}

func newDetector(cfg detConfig) *detector {
	return &detector{cfg: cfg, routes: map[string]*routeDet{}, trackers: map[string]*tracker{}, evals: newEvalDet(cfg.eval)}
}

// setLive replaces the live cohorts from a state.
func (d *detector) setLive(st *configs.State) {
	m := make(map[string]liveRoute, len(st.Routes))
	for i := range st.Routes {
		r := &st.Routes[i]
		m[r.Name] = liveRoute{cohorts: r.Cohorts(), autoRollback: r.AutoRollback}
	}
	d.live.Store(&m)
}

func (d *detector) liveRoute(name string) (liveRoute, bool) {
	p := d.live.Load()
	if p == nil {
		return liveRoute{}, false
	}
	lr, ok := (*p)[name]
	return lr, ok
}

func incidentKey(route, signal string) string { return route + "\x00" + signal }

func (d *detector) route(name string) *routeDet {
	rd := d.routes[name]
	if rd == nil {
		rd = &routeDet{name: name}
		d.routes[name] = rd
	}
	return rd
}

func (d *detector) cohort(rd *routeDet, name string) *cohortDet {
	for _, c := range rd.cohorts {
		if c.name == name {
			return c
		}
	}
	c := &cohortDet{name: name, s: newSeries(d.cfg.nb, baselineWindows, true)}
	rd.cohorts = append(rd.cohorts, c)
	return c
}

// modelLabel returns the model part of a record's configured target label
// ("provider/model" or "provider/*"), so that detector series and scope
// are keyed by the config, never by a client's model name (issue 12.7); a
// record without a target label keeps its model. It does not allocate.
func modelLabel(target, provider, model string) string {
	if n := len(provider); len(target) > n && target[n] == '/' && target[:n] == provider {
		return target[n+1:]
	}
	return model
}

func (d *detector) target(cd *cohortDet, provider, model string) *targetDet {
	for _, t := range cd.targets {
		if t.provider == provider && t.model == model {
			return t
		}
	}
	t := &targetDet{provider: provider, model: model, s: newSeries(d.cfg.nb, 0, false)}
	// A target series needs no baseline: one spare bucket is enough.
	t.s.ring = append(t.s.ring, bucket{idx: -1})
	cd.targets = append(cd.targets, t)
	return t
}

func (d *detector) index(now time.Time) int64 { return now.UnixNano() / d.cfg.width }

// liveCohorts returns the route's live cohorts: from the state when known,
// else the cohorts that served requests in the window.
func (d *detector) liveCohorts(rd *routeDet) []string {
	if lr, ok := d.liveRoute(rd.name); ok {
		return lr.cohorts
	}
	var out []string
	for _, c := range rd.cohorts {
		if c.s.cur.n > 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// observe adds one record and returns the signals it made fire (nil almost
// always).
func (d *detector) observe(r *capture.Record, now time.Time) []*fire {
	c, ok := classify(r)
	if !ok || d.cfg.disabled {
		return nil
	}
	idx := d.index(now)
	cohortName := r.Cohort
	provider, model := r.Provider, modelLabel(r.Target, r.Provider, r.Model)
	if a, ok := failedOver(r); ok {
		// The client got a fallback's answer, but the target it was routed
		// to failed: that is the target's (and its cohort's) health.
		cohortName, provider, model = a.Cohort, a.Provider, modelLabel(a.Target, a.Provider, a.Model)
		c.ok = false
		if a.Contract == capture.VerdictFail {
			c.contract = true
		} else {
			c.failed = true
		}
	}
	if cohortName == "" {
		cohortName = configs.DefaultCohort
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	rd := d.route(r.Route)
	cd := d.cohort(rd, cohortName)
	for _, x := range rd.cohorts {
		x.s.advance(idx)
	}
	cd.s.add(r, &c, rd)
	td := d.target(cd, provider, model)
	td.s.advance(idx)
	td.s.add(r, &c, rd)
	if c.ok {
		rd.pushSuccess(r)
	}
	for _, t := range rd.trackers {
		t.observe(r, &c)
	}

	// Evaluate the most specific scope the record belongs to.
	live := d.liveCohorts(rd)
	var fires []*fire
	switch {
	case len(live) > 1 && slices.Contains(live, cd.name):
		// The other cohorts are merged once for every signal.
		others, name := d.others(rd, cd, live, d.cfg.enabled(sigLatency) || d.cfg.enabled(sigTokens) || d.cfg.enabled(sigCost))
		for sig := range nSignals {
			if !d.cfg.enabled(sig) {
				continue
			}
			o := d.eval(sig, &cd.s.cur, &others, &cd.s.base, name)
			if f := d.edge(&cd.firing[sig], &cd.level[sig], o, rd, cd, sig, now); f != nil {
				fires = append(fires, f)
			}
		}
	case len(live) == 1 && live[0] == cd.name:
		for sig := range nSignals {
			if !d.cfg.enabled(sig) {
				continue
			}
			o := d.eval(sig, &cd.s.cur, nil, &cd.s.base, "")
			if f := d.edge(&rd.firing[sig], &rd.level[sig], o, rd, nil, sig, now); f != nil {
				fires = append(fires, f)
			}
		}
	}
	return fires
}

// edge turns a crossing into a fire on its rising edge, and into a raise
// (issue 16.4) when a signal firing at investigate crosses its page level.
func (d *detector) edge(firing *bool, level *configs.Severity, o obs, rd *routeDet, cd *cohortDet, sig int, now time.Time) *fire {
	switch o.verdict {
	case verdictBelow:
		*firing, *level = false, ""
	case verdictCrossing:
		sev := d.cfg.severity(sig, o)
		switch {
		case !*firing:
			*firing, *level = true, sev
			d.fired.Add(1)
			f := d.newFire(rd, cd, sig, o, now)
			f.severity = sev
			return f
		case *level == configs.SeverityInvestigate && sev == configs.SeverityPage:
			*level = sev
			f := d.newFire(rd, cd, sig, o, now)
			f.severity, f.raise = sev, true
			return f
		}
	}
	return nil
}

const (
	verdictBelow = iota
	verdictCrossing
	verdictUnknown // not enough requests or no baseline
)

// Where a baseline came from.
const (
	baseNone    = iota
	baseOthers  // the route's other live cohorts, same window
	baseEarlier // the scope's own earlier windows
	baseBefore  // eval_drift: the same cohort's scores before the change now live (others names that version)
)

// resetFiring clears the edge state of a signal on a route and its
// cohorts, so that a later crossing opens a new incident.
func (d *detector) resetFiring(route string, sig int) {
	if sig == sigEval {
		d.evals.resetFiring(route)
		return
	}
	if sig >= nSignals {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if rd := d.routes[route]; rd != nil {
		rd.firing[sig], rd.level[sig] = false, ""
		for _, c := range rd.cohorts {
			c.firing[sig], c.level[sig] = false, ""
		}
	}
}

// prune drops series idle for longer than their ring, keeping routes with
// trackers.
func (d *detector) prune(now time.Time) {
	idx := d.index(now)
	horizon := d.cfg.nb * (1 + baselineWindows)
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, rd := range d.routes {
		rd.cohorts = slices.DeleteFunc(rd.cohorts, func(c *cohortDet) bool {
			c.targets = slices.DeleteFunc(c.targets, func(t *targetDet) bool { return idx-t.s.head > horizon })
			return idx-c.s.head > horizon
		})
		if len(rd.cohorts) == 0 && len(rd.trackers) == 0 {
			delete(d.routes, name)
		}
	}
}
