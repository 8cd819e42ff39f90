package incidents

import (
	"math"
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
	SignalDeclared            = "declared"
)

func signalName(sig int) string {
	switch sig {
	case sigContract:
		return SignalContractFailureRate
	case sig429:
		return SignalUpstream429Rate
	case sigError:
		return SignalErrorRate
	case sigLatency:
		return SignalLatencyP99
	case sigTokens:
		return SignalTokensPerSuccess
	}
	return SignalDeclared
}

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

func latIndex(ms float64) int {
	if !(ms > 1) {
		return 0
	}
	i := int(math.Ceil(4 * math.Log2(ms)))
	return min(i, latOverflow)
}

// latUpper returns 2^(i/4), the upper bound of bucket i, without Exp2.
func latUpper(i int) float64 {
	f := 1.0
	switch i & 3 {
	case 1:
		f = 1.189207115002721 // 2^(1/4)
	case 2:
		f = 1.4142135623730951 // 2^(2/4)
	case 3:
		f = 1.681792830507429 // 2^(3/4)
	}
	return math.Ldexp(f, i>>2)
}

// class is what one record contributes to the windows.
type class struct {
	failed, contract, r429, ok bool
	tokens                     int64
	lat                        int
}

// classify returns the record's class and whether it counts at all: the
// client's own mistakes and disconnects, the key's budget and the gateway's
// overload say nothing about the route's health.
func classify(r *capture.Record) (class, bool) {
	if r == nil || r.Route == "" {
		return class{}, false
	}
	switch r.Outcome {
	case capture.OutcomeClientClosed, capture.OutcomeBadRequest, capture.OutcomeUnauthorized,
		capture.OutcomeForbidden, capture.OutcomeNotFound, capture.OutcomeRateLimited,
		capture.OutcomeOverloaded, capture.OutcomeShutdown:
		return class{}, false
	}
	c := class{
		failed:   r.Failed(),
		contract: r.Contract.Verdict == capture.VerdictFail,
		r429:     is429(r),
		lat:      latIndex(r.LatencyMS),
	}
	c.ok = r.Outcome == capture.OutcomeOK && !c.contract
	c.tokens = recordTokens(r)
	return c, true
}

func is429(r *capture.Record) bool {
	if r.Outcome == capture.OutcomeUpstream429 {
		return true
	}
	for i := range r.Attempts {
		if r.Attempts[i].Status == 429 {
			return true
		}
	}
	return false
}

func recordTokens(r *capture.Record) int64 {
	if t := r.Usage.PromptTokens + r.Usage.CompletionTokens; t > 0 {
		return int64(t)
	}
	return int64(r.Usage.TotalTokens)
}

// agg is the sum of a set of buckets.
type agg struct {
	n, failed, contract, r429, ok, tokOK int64
	tok                                  int64 // every request's tokens, for an incident's cost
	lat                                  [nLat]uint32
}

func (a *agg) addRec(c *class) {
	a.n++
	if c.failed {
		a.failed++
	}
	if c.contract {
		a.contract++
	}
	if c.r429 {
		a.r429++
	}
	if c.ok {
		a.ok++
		a.tokOK += c.tokens
	}
	a.tok += c.tokens
	a.lat[c.lat]++
}

func (a *agg) addAgg(b *agg) {
	a.n += b.n
	a.failed += b.failed
	a.contract += b.contract
	a.r429 += b.r429
	a.ok += b.ok
	a.tokOK += b.tokOK
	a.tok += b.tok
	for i := range a.lat {
		a.lat[i] += b.lat[i]
	}
}

func (a *agg) subAgg(b *agg) {
	a.n -= b.n
	a.failed -= b.failed
	a.contract -= b.contract
	a.r429 -= b.r429
	a.ok -= b.ok
	a.tokOK -= b.tokOK
	a.tok -= b.tok
	for i := range a.lat {
		a.lat[i] -= b.lat[i]
	}
}

// bad returns the count of records bad for a rate signal.
func (a *agg) bad(sig int) int64 {
	switch sig {
	case sigContract:
		return a.contract
	case sig429:
		return a.r429
	case sigError:
		return a.failed
	}
	return 0
}

// p99 returns the upper bound of the histogram bucket holding the 99th
// percentile, or 0 without data. It walks from the slow end: at most 1%
// of the records lie above the answer.
func (a *agg) p99() float64 {
	if a.n <= 0 {
		return 0
	}
	tail := a.n - int64(math.Ceil(0.99*float64(a.n))) // records allowed above
	var acc int64
	for i := latOverflow; i > 0; i-- {
		acc += int64(a.lat[i])
		if acc > tail {
			return latUpper(i)
		}
	}
	return latUpper(0)
}

// above returns how many latencies fall in buckets entirely above ms:
// bucket i starts at latUpper(i-1), so those after ms's own bucket.
func (a *agg) above(ms float64) int64 {
	var n int64
	for _, c := range a.lat[min(latIndex(ms)+1, nLat):] {
		n += int64(c)
	}
	return n
}

func (a *agg) tps() float64 {
	if a.ok == 0 {
		return 0
	}
	return float64(a.tokOK) / float64(a.ok)
}

// bucket is one slice of time of a series.
type bucket struct {
	idx int64 // absolute bucket number (time / width); -1 when empty
	agg
	// firstBad is the earliest ReceivedAt of a record bad for each rate
	// signal (indexed by sigContract, sig429, sigError).
	firstBad [3]time.Time
	// bad holds the records bad for any rate signal, in arrival order.
	bad []*capture.Record
	// before is the route's last successes when the bucket's first bad
	// record arrived.
	before []*capture.Record
}

func (b *bucket) reset(idx int64) {
	b.idx = idx
	b.agg = agg{}
	b.firstBad = [3]time.Time{}
	clear(b.bad)
	b.bad = b.bad[:0]
	clear(b.before)
	b.before = b.before[:0]
}

// series is a sliding window over buckets: cur sums the last nb buckets
// (the window), base the baselineWindows windows before it.
type series struct {
	ring []bucket
	nb   int64
	head int64
	cur  agg
	base agg
	keep bool // keep bad records and recent records (cohort series)

	recent    [recentPerSeries]*capture.Record
	recentPos int
}

func newSeries(nb int64, windows int, keep bool) *series {
	s := &series{ring: make([]bucket, nb*int64(1+windows)), nb: nb, head: -1, keep: keep}
	for i := range s.ring {
		s.ring[i].idx = -1
	}
	return s
}

func (s *series) slot(idx int64) *bucket { return &s.ring[idx%int64(len(s.ring))] }

// advance moves the window so that idx is its newest bucket.
func (s *series) advance(idx int64) {
	if s.head < 0 {
		s.head = idx
		s.slot(idx).reset(idx)
		return
	}
	if idx <= s.head {
		return
	}
	L := int64(len(s.ring))
	if idx-s.head >= L {
		for i := range s.ring {
			s.ring[i].reset(-1)
		}
		s.cur, s.base = agg{}, agg{}
		s.head = idx
		s.slot(idx).reset(idx)
		return
	}
	for i := s.head + 1; i <= idx; i++ {
		// Bucket i-nb leaves the window for the baseline.
		if j := i - s.nb; j >= 0 {
			if b := s.slot(j); b.idx == j {
				s.cur.subAgg(&b.agg)
				s.base.addAgg(&b.agg)
				// Records serve the window only: do not keep them alive.
				clear(b.bad)
				b.bad = b.bad[:0]
				clear(b.before)
				b.before = b.before[:0]
			}
		}
		// Bucket i-L leaves the baseline; its slot becomes bucket i.
		b := s.slot(i)
		if b.idx >= 0 && b.idx == i-L {
			s.base.subAgg(&b.agg)
		}
		b.reset(i)
	}
	s.head = idx
}

// inWindow calls f for the window's buckets, oldest first.
func (s *series) inWindow(f func(b *bucket)) {
	if s.head < 0 {
		return
	}
	for i := max(0, s.head-s.nb+1); i <= s.head; i++ {
		if b := s.slot(i); b.idx == i {
			f(b)
		}
	}
}

func (s *series) add(r *capture.Record, c *class, rd *routeDet) {
	b := s.slot(s.head)
	b.addRec(c)
	s.cur.addRec(c)
	if !s.keep {
		return
	}
	s.recent[s.recentPos] = r
	s.recentPos = (s.recentPos + 1) % recentPerSeries
	if !(c.failed || c.contract || c.r429) {
		return
	}
	for sig, bad := range [3]bool{c.contract, c.r429, c.failed} {
		if bad && (b.firstBad[sig].IsZero() || r.ReceivedAt.Before(b.firstBad[sig])) {
			b.firstBad[sig] = r.ReceivedAt
		}
	}
	if len(b.bad) == 0 {
		b.before = rd.appendSuccesses(b.before[:0])
	}
	if len(b.bad) < maxBadPerBucket {
		b.bad = append(b.bad, r)
	}
}

// recentRecords returns the series' latest records, oldest first.
func (s *series) recentRecords() []*capture.Record {
	out := make([]*capture.Record, 0, recentPerSeries)
	for i := range recentPerSeries {
		if r := s.recent[(s.recentPos+i)%recentPerSeries]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

type routeDet struct {
	name    string
	cohorts []*cohortDet
	firing  [nSignals]bool
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
	window   time.Duration
	width    int64 // bucket width in ns
	nb       int64
	min      int64
	rate     [3]float64 // by sigContract, sig429, sigError; <= 0 disables
	latRatio float64    // <= 1 disables
	tokRatio float64
	lookback time.Duration
	disabled bool
}

func newDetConfig(d configs.Detection) detConfig {
	def := func(v, dv float64) float64 {
		if v == 0 {
			return dv
		}
		return v
	}
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
	c.rate[sigContract] = def(d.ContractFailureRate, 0.1)
	c.rate[sig429] = def(d.Upstream429Rate, 0.5)
	c.rate[sigError] = def(d.ErrorRate, 0.2)
	c.latRatio = def(d.LatencyP99Ratio, 2)
	c.tokRatio = def(d.TokensPerSuccessRatio, 1.3)
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

	mu       sync.Mutex
	routes   map[string]*routeDet
	trackers map[string]*tracker // by incident key (route + signal)
	fired    atomic.Int64
}

func newDetector(cfg detConfig) *detector {
	return &detector{cfg: cfg, routes: map[string]*routeDet{}, trackers: map[string]*tracker{}}
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
		others, name := d.others(rd, cd, live, d.cfg.enabled(sigLatency) || d.cfg.enabled(sigTokens))
		for sig := range nSignals {
			if !d.cfg.enabled(sig) {
				continue
			}
			o := d.eval(sig, &cd.s.cur, &others, &cd.s.base, name)
			if f := d.edge(&cd.firing[sig], o, rd, cd, sig, now); f != nil {
				fires = append(fires, f)
			}
		}
	case len(live) == 1 && live[0] == cd.name:
		for sig := range nSignals {
			if !d.cfg.enabled(sig) {
				continue
			}
			o := d.eval(sig, &cd.s.cur, nil, &cd.s.base, "")
			if f := d.edge(&rd.firing[sig], o, rd, nil, sig, now); f != nil {
				fires = append(fires, f)
			}
		}
	}
	return fires
}

// edge turns a crossing into a fire on its rising edge only.
func (d *detector) edge(firing *bool, o obs, rd *routeDet, cd *cohortDet, sig int, now time.Time) *fire {
	switch o.verdict {
	case verdictBelow:
		*firing = false
	case verdictCrossing:
		if !*firing {
			*firing = true
			d.fired.Add(1)
			return d.newFire(rd, cd, sig, o, now)
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
)

// obs is one signal evaluated on one scope.
type obs struct {
	verdict   int
	observed  float64
	threshold float64
	baseline  float64
	n, bad    int64
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
			o.baseline, o.baseKind = float64(others.bad(sig))/float64(others.n), baseOthers
		} else if base.n > 0 {
			o.baseline, o.baseKind = float64(base.bad(sig))/float64(base.n), baseEarlier
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
			o.baseline, o.baseKind = others.p99(), baseOthers
		case base.n >= min:
			o.baseline, o.baseKind = base.p99(), baseEarlier
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
		o.n = cur.ok
		if cur.ok == 0 {
			return o
		}
		if cur.ok < min {
			o.verdict = verdictUnknown
			return o
		}
		switch {
		case others != nil && others.ok >= min:
			o.baseline, o.baseKind = others.tps(), baseOthers
		case base.ok >= min:
			o.baseline, o.baseKind = base.tps(), baseEarlier
		default:
			o.verdict = verdictUnknown
			return o
		}
		o.observed = cur.tps()
		o.threshold = d.cfg.tokRatio * o.baseline
		if o.baseline > 0 && o.observed >= o.threshold {
			o.verdict = verdictCrossing
		}
		return o
	}
	return o
}

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
}

type rollbackResult struct {
	at            time.Time
	before, after configs.State
	err           error
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
	if cd != nil {
		f.cohort = cd.name
	}
	pred := predicate{sig: sig, thr: o.threshold}
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
}

func (p predicate) matchRecord(r *capture.Record) bool {
	c, ok := classify(r)
	return ok && p.match(r, &c)
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
	}
	return c.failed || c.contract || c.r429
}

// resetFiring clears the edge state of a signal on a route and its
// cohorts, so that a later crossing opens a new incident.
func (d *detector) resetFiring(route string, sig int) {
	if sig >= nSignals {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if rd := d.routes[route]; rd != nil {
		rd.firing[sig] = false
		for _, c := range rd.cohorts {
			c.firing[sig] = false
		}
	}
}

// check evaluates sig on a scope for the manager: the cohort (when it is
// still live) or the route's live traffic (cohort ""). live reports
// whether the cohort still has weight.
func (d *detector) check(route, cohort string, sig int, now time.Time) (o obs, live bool) {
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
		if !(isRateSignal(sig) || sig == extra) || !d.cfg.enabled(sig) {
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
