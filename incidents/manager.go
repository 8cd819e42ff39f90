package incidents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// StateSource returns the live state: what is routed right now, after any
// rollbacks. It must be safe for concurrent use.
type StateSource interface {
	State() configs.State
}

// Rollbacker sets a cohort's weight on a route to 0 and returns the state
// before and after. It must be safe for concurrent use.
type Rollbacker interface {
	Rollback(route, cohort string) (before, after configs.State, err error)
}

// Options configure a Manager.
type Options struct {
	Detection configs.Detection
	// DataDir holds incidents/ (one JSON file per incident). Required.
	DataDir string
	// Redis shares incidents across replicas. Nil: local only.
	Redis redis.UniversalClient
	// State is the live state. Required.
	State StateSource
	// Rollback performs automatic rollbacks. Nil: none.
	Rollback Rollbacker
	// Audit is the change log: the source of an incident's changes and
	// where rollbacks are recorded. Nil: incidents have no changes.
	Audit *Audit
	// Recent returns up to n recent masked records, newest first, for
	// which keep is true (capture's memory ring). Nil: samples come from
	// what Observe saw only.
	Recent   func(n int, keep func(*capture.Record) bool) []*capture.Record
	Webhooks []configs.Webhook
	Logger   *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Replica names this replica in incidents, waves and actions. Default
	// the host name.
	Replica string
	// Tick is the evaluation period (mitigation, recovery, scope
	// updates). Default 200ms.
	Tick time.Duration
	// WebhookBackoff is the first retry delay of a webhook; it doubles on
	// each of the 5 tries. Default 1s.
	WebhookBackoff time.Duration
}

// Manager detects incidents from capture records, opens, updates and
// stores them, rolls failing cohorts back and notifies webhooks.
//
// Observe runs on the capture writer's goroutine and does no I/O. Start
// launches two goroutines: a responder that snapshots the state and rolls
// back the moment a signal fires, and a loop that records incidents and
// evaluates them every Tick. Close stops both. All exported methods are
// safe for concurrent use.
type Manager struct {
	o       Options
	cfg     detConfig
	log     *slog.Logger
	now     func() time.Time
	det     *detector
	rs      *redisStore
	hooks   *notifier
	created time.Time

	fires        chan *fire // Observe → responder
	handled      chan *fire // responder → loop
	droppedFires atomic.Int64

	mu        sync.Mutex
	active    map[string]*activeInc // by incident ID: open or mitigated
	byKey     map[string]string     // route+signal → active incident ID
	summaries map[string]versioned  // every incident known here

	openMu  sync.Mutex // serializes "is there one already? else open"
	umu     sync.Mutex // serializes read-modify-write of incidents
	ioMu    sync.Mutex
	written map[string]int64     // incident ID → version on disk
	unsaved map[string]*Incident // incident ID → newest version the disk refused, retried every tick

	// Owned by the loop goroutine.
	auditSeq  int64
	lastLive  time.Time
	lastPrune time.Time

	stop      chan struct{}
	wg        sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once
}

type versioned struct {
	Summary
	version int64
}

// activeInc is an open or mitigated incident this replica follows.
type activeInc struct {
	inc    *Incident
	key    string
	sig    int
	shared bool // also in Redis
	// base is this replica's contribution before a restart; the tracker
	// counts from zero after it.
	base           Contribution
	trackerVersion int64
	lastSync       time.Time
	lastRefresh    time.Time
	healthySince   time.Time
}

const (
	defaultTick   = 200 * time.Millisecond
	fireQueue     = 256
	syncEvery     = time.Second
	refreshEvery  = time.Second
	recentScanMax = 500
	// orphanGrace is how long a tracker may wait for its incident.
	orphanGrace = 30 * time.Second
)

// NewManager builds a manager and reloads the incidents in
// DataDir/incidents: open and mitigated ones are followed again (scope,
// mitigation, recovery) as if the process had never stopped.
func NewManager(o Options) (*Manager, error) {
	if o.DataDir == "" {
		return nil, errors.New("incidents: data dir is required")
	}
	if o.State == nil {
		return nil, errors.New("incidents: state source is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tick <= 0 {
		o.Tick = defaultTick
	}
	if o.Replica == "" {
		o.Replica, _ = os.Hostname()
		if o.Replica == "" {
			o.Replica = "local"
		}
	}
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("incidents: create data dir: %w", err)
	}
	m := &Manager{
		o: o, cfg: newDetConfig(o.Detection), log: o.Logger.With("component", "incidents"), now: o.Now,
		fires:     make(chan *fire, fireQueue),
		handled:   make(chan *fire, fireQueue),
		active:    map[string]*activeInc{},
		byKey:     map[string]string{},
		summaries: map[string]versioned{},
		written:   map[string]int64{},
		stop:      make(chan struct{}),
	}
	m.created = m.now()
	m.det = newDetector(m.cfg)
	st := o.State.State()
	m.det.setLive(&st)
	if o.Redis != nil {
		m.rs = newRedisStore(o.Redis)
	}
	m.hooks = newNotifier(o.Webhooks, o.WebhookBackoff, m.log, m.webhookDone)
	if o.Audit != nil {
		_, m.auditSeq = o.Audit.after(1<<62 - 1)
	}

	removeStaleTemps(filepath.Join(o.DataDir, incidentsDir), m.log)
	incs, err := LoadDir(o.DataDir)
	if err != nil {
		// One bad file must not hide the others or stop the gateway.
		m.log.Error("some incidents could not be loaded", "err", err)
	}
	for _, inc := range incs {
		m.summaries[inc.ID] = versioned{inc.Summary(), inc.Version}
		m.written[inc.ID] = inc.Version
		if inc.Status == StatusResolved {
			continue
		}
		sig := signalIndex(inc.Trigger.Signal)
		key := incidentKey(inc.Trigger.Route, inc.Trigger.Signal)
		a := &activeInc{inc: inc, key: key, sig: sig, shared: m.rs != nil}
		if c, ok := inc.Contributions[o.Replica]; ok {
			a.base = c
		}
		m.active[inc.ID] = a
		m.byKey[key] = inc.ID
		m.det.ensureTracker(inc.Trigger.Route, key, inc.Trigger.Signal, inc.Trigger.Cohort,
			predicate{sig: sig, thr: inc.Trigger.Threshold}, m.created)
		if inc.Status == StatusMitigated && inc.MitigatedAt != nil && len(inc.Samples.After) < samplesPerPhase {
			m.det.startAfter(key, *inc.MitigatedAt)
		}
	}
	return m, nil
}

// Observe feeds one capture record to the detector. It is called for
// every record, in order, on the capture writer's goroutine: it updates
// in-memory windows only and hands a firing signal to the responder
// without blocking (a full queue drops and counts). r is read-only and
// may be retained.
func (m *Manager) Observe(r *capture.Record) {
	fires := m.det.observe(r, m.now())
	for _, f := range fires {
		select {
		case m.fires <- f:
		default:
			m.droppedFires.Add(1)
		}
	}
}

// DroppedSignals returns how many firing signals were dropped because the
// responder's queue was full.
func (m *Manager) DroppedSignals() int64 { return m.droppedFires.Load() }

// Start launches the responder, the evaluation loop and the webhook
// sender. Calling it twice does nothing.
func (m *Manager) Start() {
	m.startOnce.Do(func() {
		m.wg.Add(2)
		go m.respond()
		go m.loop()
		m.hooks.start()
	})
}

// Close stops the goroutines, writes the latest scope of open incidents
// and gives queued webhooks until ctx ends. It does not close the Audit.
func (m *Manager) Close(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		close(m.stop)
		done := make(chan struct{})
		go func() { m.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("incidents: stop: %w", ctx.Err())
		}
		now := m.now()
		for _, id := range m.activeIDs() {
			m.syncScope(id, now, true)
		}
		// Incidents the disk refused get until ctx ends to land.
		for m.retryUnsaved(); m.Unsaved() > 0 && ctx.Err() == nil; m.retryUnsaved() {
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		if n := m.Unsaved(); n > 0 && err == nil {
			err = fmt.Errorf("incidents: %d not persisted: the disk refused them until shutdown", n)
		}
		if herr := m.hooks.stop(ctx); herr != nil && err == nil {
			err = herr
		}
	})
	return err
}

// respond takes each firing signal, freezes the live state and rolls the
// cohort back when allowed, before any disk or Redis work.
func (m *Manager) respond() {
	defer m.wg.Done()
	for {
		select {
		case f := <-m.fires:
			m.prepare(f)
			select {
			case m.handled <- f:
			case <-m.stop:
				return
			}
		case <-m.stop:
			return
		}
	}
}

func (m *Manager) prepare(f *fire) {
	f.state = m.o.State.State()
	rs := f.state.Route(f.route)
	switch {
	case f.cohort == "" || rs == nil:
		return
	case !rs.AutoRollback:
		f.rbSkip = "auto_rollback is off for the route"
		return
	case m.o.Rollback == nil:
		f.rbSkip = "no rollback is wired"
		return
	}
	live := rs.Cohorts()
	if !slices.Contains(live, f.cohort) {
		return // already rolled back
	}
	if len(live) < 2 {
		f.rbSkip = fmt.Sprintf("cohort %s is the route's only live cohort", f.cohort)
		return
	}
	if inc := incumbent(rs); f.cohort == inc {
		// A rollback returns traffic to the incumbent; taking the incumbent
		// away would push everyone onto the challenger instead.
		f.rbSkip = fmt.Sprintf("cohort %s is the route's incumbent; only challengers are rolled back automatically", f.cohort)
		return
	}
	if isRateSignal(f.sig) && f.o.baseKind == baseOthers && f.o.baseline >= f.o.threshold {
		// Moving traffic onto cohorts that fail as badly helps nobody.
		name, _ := rateWords(f.signal)
		f.rbSkip = fmt.Sprintf("the other cohorts fail too (their %s is %s, threshold %s)", name, pct(f.o.baseline), pct(f.o.threshold))
		return
	}
	before, after, err := m.o.Rollback.Rollback(f.route, f.cohort)
	f.rb = &rollbackResult{at: m.now(), before: before, after: after, err: err}
	if err == nil {
		m.det.setLive(&after)
	}
}

func (m *Manager) loop() {
	defer m.wg.Done()
	t := time.NewTicker(m.o.Tick)
	defer t.Stop()
	for {
		select {
		case f := <-m.handled:
			m.handleFire(f)
		case <-t.C:
			m.tick()
		case <-m.stop:
			return
		}
	}
}

func (m *Manager) idForKey(key string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byKey[key]
}

func (m *Manager) activeIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.active))
	for id := range m.active {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// handleFire records a prepared signal: a new incident, a wave of the
// incident already open for its route and signal, or a related signal of
// the incident open on the same cohort.
func (m *Manager) handleFire(f *fire) {
	m.openMu.Lock()
	defer m.openMu.Unlock()
	if f.related != "" {
		if id := m.idForKey(f.related); id != "" {
			m.auditRollback(f, id)
			m.addRelated(id, f)
			return
		}
		m.det.ensureTracker(f.route, f.key, f.signal, f.cohort, predicate{sig: f.sig, thr: f.o.threshold}, f.windowStart)
	}
	if id := m.idForKey(f.key); id != "" {
		m.auditRollback(f, id)
		if m.addWave(id, f) {
			return
		}
	}
	m.det.ensureTracker(f.route, f.key, f.signal, f.cohort, predicate{sig: f.sig, thr: f.o.threshold}, f.windowStart)
	m.open(m.build(f), f)
}

// build assembles a new incident from a fire.
func (m *Manager) build(f *fire) *Incident {
	now := m.now().UTC()
	m.enrich(f)
	inc := &Incident{
		ID:             newID("inc", now),
		Status:         StatusOpen,
		OpenedAt:       now,
		FirstFailureAt: f.firstFailure.UTC(),
		DetectedAt:     f.at.UTC(),
		State:          f.state,
		Replica:        m.o.Replica,
		Trigger: Trigger{
			Signal: f.signal, Route: f.route, Cohort: f.cohort, Target: f.target,
			Observed: round(f.o.observed), Threshold: round(f.o.threshold), Baseline: round(f.o.baseline),
			Window: configs.Duration(f.window), Requests: f.o.n, Failed: f.o.bad,
			Unit: signalUnit(f.sig), BaselineSource: f.o.baseSrc,
		},
		Samples: Samples{Before: samples(f.before), During: samples(f.during), After: []capture.Record{}},
		Actions: []Action{},
	}
	switch f.sig {
	case sigLatency:
		inc.Trigger.Ratio = m.cfg.latRatio
	case sigTokens:
		inc.Trigger.Ratio = m.cfg.tokRatio
	}
	inc.Changes = m.changesFor(f.route, inc.FirstFailureAt)
	inc.Symptom = symptom(f, &inc.Trigger, f.state.Route(f.route))
	inc.Layer, inc.LayerReason = deriveLayer(f.sig, f.failing, inc.Changes, f.route)
	inc.Contributions = map[string]Contribution{m.o.Replica: {Scope: f.seed.scope, Cost: f.seed.cost}}
	inc.sumContributions()

	for _, e := range inc.Changes {
		inc.addEvent(Event{At: e.At, Kind: EventChange, Message: describeEntry(e)})
	}
	if f.sig == sigDeclared {
		inc.addEvent(Event{At: inc.DetectedAt, Kind: EventDeclared, Message: "declared by hand: " + f.reason, Replica: m.o.Replica})
	} else {
		if len(f.during) > 0 {
			inc.addEvent(Event{At: inc.FirstFailureAt, Kind: EventFirstFailure, Message: "first failing request: " + describeRecord(f.during[0])})
		} else {
			inc.addEvent(Event{At: inc.FirstFailureAt, Kind: EventFirstFailure, Message: "the detection window starts (no single first failing request is known for this signal)"})
		}
		inc.addEvent(Event{At: inc.DetectedAt, Kind: EventDetection, Message: describeDetection(f, &inc.Trigger), Replica: m.o.Replica})
	}
	inc.Waves = []Wave{m.wave(1, f)}
	if err := inc.seal(); err != nil {
		m.log.Error("seal incident", "incident", inc.ID, "err", err)
	}
	m.applyRollback(inc, f)
	inc.Version = 1
	inc.UpdatedAt = now
	return inc
}

// enrich completes samples and the first failure from capture's memory.
func (m *Manager) enrich(f *fire) {
	if m.o.Recent == nil || f.sig == sigDeclared && len(f.during) == 0 {
		return
	}
	p := predicate{sig: f.sig, thr: f.o.threshold}
	if !isRateSignal(f.sig) || len(f.during) < samplesPerPhase {
		recs := m.o.Recent(recentScanMax, func(r *capture.Record) bool {
			return r.Route == f.route && (f.cohort == "" || cohortOf(r) == f.cohort) &&
				!r.ReceivedAt.Before(f.windowStart) && p.matchRecord(r)
		})
		slices.Reverse(recs) // oldest first
		for _, r := range recs {
			if !isRateSignal(f.sig) && r.ReceivedAt.Before(f.firstFailure) {
				f.firstFailure = r.ReceivedAt
			}
		}
		f.during = mergeSamples(f.during, recs, true)
		if len(f.failing) < 50 {
			f.failing = mergeSamples(f.failing, recs, false)
		}
	}
	if len(f.before) < samplesPerPhase {
		recs := m.o.Recent(samplesPerPhase, func(r *capture.Record) bool {
			c, ok := classify(r)
			return ok && c.ok && r.Route == f.route && r.ReceivedAt.Before(f.firstFailure)
		})
		slices.Reverse(recs)
		f.before = mergeSamples(recs, f.before, false)
		if len(f.before) > samplesPerPhase {
			f.before = f.before[len(f.before)-samplesPerPhase:]
		}
	}
}

func cohortOf(r *capture.Record) string {
	if r.Cohort == "" {
		return configs.DefaultCohort
	}
	return r.Cohort
}

// mergeSamples adds b's records missing from a, sorted by ReceivedAt;
// capped keeps only the first samplesPerPhase.
func mergeSamples(a, b []*capture.Record, capped bool) []*capture.Record {
	seen := make(map[string]bool, len(a))
	for _, r := range a {
		seen[r.GatewayRequestID] = true
	}
	out := slices.Clone(a)
	for _, r := range b {
		if !seen[r.GatewayRequestID] {
			seen[r.GatewayRequestID] = true
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(x, y *capture.Record) int { return x.ReceivedAt.Compare(y.ReceivedAt) })
	if capped && len(out) > samplesPerPhase {
		out = out[:samplesPerPhase]
	}
	return out
}

// changesFor returns the audit entries in the lookback before the first
// failure that touched route or the whole gateway, with their changes
// narrowed to those.
func (m *Manager) changesFor(route string, firstFailure time.Time) []AuditEntry {
	out := []AuditEntry{}
	if m.o.Audit == nil {
		return out
	}
	for _, e := range m.o.Audit.List(firstFailure.Add(-m.cfg.lookback)) {
		if e.At.After(firstFailure) || e.Route != "" && e.Route != route {
			continue
		}
		if e.Source == SourceStartup {
			// A start's diff is the whole config against nothing: keep the
			// fact that the gateway started, not the noise.
			e.Changes = []configs.Change{}
			out = append(out, e)
			continue
		}
		rel := relevantChanges(e.Changes, route)
		if len(rel) == 0 {
			continue
		}
		e.Changes = rel
		out = append(out, e)
	}
	return out
}

func relevantChanges(cs []configs.Change, route string) []configs.Change {
	out := []configs.Change{}
	prefix := "routes[" + route + "]"
	for _, c := range cs {
		if !strings.HasPrefix(c.Path, "routes[") || c.Path == prefix || strings.HasPrefix(c.Path, prefix+".") {
			out = append(out, c)
		}
	}
	return out
}

func (m *Manager) wave(n int, f *fire) Wave {
	return Wave{
		N: n, DetectedAt: f.at.UTC(), Signal: f.signal, Cohort: f.cohort, Target: f.target,
		Observed: round(f.o.observed), Threshold: round(f.o.threshold), Requests: f.o.n,
		Replica: m.o.Replica, RolledBack: f.rb != nil && f.rb.err == nil,
	}
}

// applyRollback records the responder's rollback (or why there was none)
// on inc; a successful rollback mitigates it.
func (m *Manager) applyRollback(inc *Incident, f *fire) {
	if f.rb == nil {
		if f.rbSkip != "" {
			inc.addEvent(Event{At: f.at.UTC(), Kind: EventRollback, Message: "no automatic rollback: " + f.rbSkip, Replica: m.o.Replica})
		}
		return
	}
	at := f.rb.at.UTC()
	if f.rb.err != nil {
		msg := fmt.Sprintf("automatic rollback of cohort %s on route %s failed", f.cohort, f.route)
		inc.Actions = append(inc.Actions, Action{At: at, Kind: "rollback", Message: msg, Error: f.rb.err.Error(), Replica: m.o.Replica})
		inc.addEvent(Event{At: at, Kind: EventRollback, Message: msg + ": " + f.rb.err.Error(), Replica: m.o.Replica})
		return
	}
	msg := rollbackMessage(f.route, f.cohort, f.rb.before, f.rb.after)
	inc.Actions = append(inc.Actions, Action{At: at, Kind: "rollback", Message: msg, OK: true, Replica: m.o.Replica})
	inc.addEvent(Event{At: at, Kind: EventRollback, Replica: m.o.Replica,
		Message: fmt.Sprintf("automatic rollback: %s, %s after detection", msg, fmtDur(f.rb.at.Sub(f.at)))})
	m.mitigateInPlace(inc, at, fmt.Sprintf("traffic of route %s returned to %s", f.route, cohortList(f.rb.after.Route(f.route))))
}

// mitigateInPlace marks inc mitigated at at.
func (m *Manager) mitigateInPlace(inc *Incident, at time.Time, why string) {
	inc.Status = StatusMitigated
	inc.MitigatedAt = &at
	inc.addEvent(Event{At: at, Kind: EventMitigation, Message: "mitigated: " + why, Replica: m.o.Replica})
}

// auditRollback appends the audit entry of the responder's rollback.
func (m *Manager) auditRollback(f *fire, incidentID string) {
	if f.rb == nil || f.rb.err != nil || m.o.Audit == nil {
		return
	}
	_, err := m.o.Audit.Append(AuditEntry{
		At: f.rb.at, Source: SourceRollbackAuto, Actor: "cairn", Route: f.route,
		Reason:   fmt.Sprintf("incident %s: %s on cohort %s", incidentID, f.signal, f.cohort),
		Revision: f.rb.after.Revision, Changes: configs.Diff(f.rb.before, f.rb.after), Replica: m.o.Replica,
	})
	if err != nil {
		m.log.Error("audit of automatic rollback failed", "incident", incidentID, "err", err)
	}
}

// open stores a new incident, or joins the one another replica holds for
// the same route and signal. It returns the incident's ID.
func (m *Manager) open(inc *Incident, f *fire) string {
	shared := false
	if m.rs != nil {
		for range 2 {
			id, err := m.rs.open(inc)
			if err != nil {
				m.log.Warn("redis unavailable; incident kept locally", "incident", inc.ID, "err", err)
				break
			}
			if id == inc.ID {
				shared = true
				break
			}
			remote, err := m.rs.get(id)
			if err != nil {
				m.log.Warn("redis unavailable; incident kept locally", "incident", inc.ID, "err", err)
				break
			}
			if remote == nil || remote.Status == StatusResolved {
				if err := m.rs.dropStaleClaim(f.route, f.signal, id); err != nil {
					m.log.Warn("drop stale incident claim", "err", err)
					break
				}
				continue
			}
			// Another replica opened it: follow it and add our wave.
			m.register(remote, true)
			m.persist(remote)
			m.auditRollback(f, id)
			m.addWave(id, f)
			return id
		}
	}
	m.register(inc, shared)
	m.persist(inc)
	m.auditRollback(f, inc.ID)
	m.log.Warn("incident opened", "incident", inc.ID, "route", f.route, "signal", f.signal, "cohort", f.cohort, "symptom", inc.Symptom)
	now := m.now()
	m.hooks.enqueue(EventOpened, inc, m.o.Replica, now)
	if inc.Status == StatusMitigated {
		m.det.startAfter(f.key, *inc.MitigatedAt)
		m.hooks.enqueue(EventMitigated, inc, m.o.Replica, now)
	}
	return inc.ID
}

func (m *Manager) register(inc *Incident, shared bool) {
	key := incidentKey(inc.Trigger.Route, inc.Trigger.Signal)
	m.mu.Lock()
	defer m.mu.Unlock()
	a := &activeInc{inc: inc.clone(), key: key, sig: signalIndex(inc.Trigger.Signal), shared: shared}
	if c, ok := inc.Contributions[m.o.Replica]; ok && inc.Replica != m.o.Replica {
		a.base = c
	}
	m.active[inc.ID] = a
	m.byKey[key] = inc.ID
	m.summaries[inc.ID] = versioned{inc.Summary(), inc.Version}
}

// addWave records a repeat of the incident's route and signal. It
// returns false when the incident is no longer open or mitigated.
func (m *Manager) addWave(id string, f *fire) bool {
	var mitigated, reopened bool
	out, err := m.update(id, func(inc *Incident) bool {
		mitigated, reopened = false, false
		if inc.Status == StatusResolved {
			return false
		}
		n := len(inc.Waves) + 1
		inc.Waves = append(inc.Waves, m.wave(n, f))
		inc.addEvent(Event{At: f.at.UTC(), Kind: EventWave, Replica: m.o.Replica,
			Message: fmt.Sprintf("wave %d: %s", n, describeDetection(f, nil))})
		was := inc.Status
		m.applyRollback(inc, f)
		switch {
		case inc.Status == StatusMitigated && (was == StatusOpen || f.rb != nil && f.rb.err == nil):
			mitigated = true
		case was == StatusMitigated:
			inc.Status = StatusOpen
			reopened = true
			inc.addEvent(Event{At: f.at.UTC(), Kind: EventWave, Message: "reopened: the signal crossed its threshold again after mitigation", Replica: m.o.Replica})
		}
		return true
	})
	if err != nil {
		m.log.Error("record wave", "incident", id, "err", err)
		return true // the incident exists; do not open a duplicate
	}
	if out == nil {
		m.finish(id)
		return false
	}
	m.log.Warn("incident wave", "incident", id, "wave", len(out.Waves), "route", f.route, "signal", f.signal, "cohort", f.cohort, "reopened", reopened)
	m.resetHealth(id)
	if mitigated {
		m.det.startAfter(f.key, *out.MitigatedAt)
		m.hooks.enqueue(EventMitigated, out, m.o.Replica, m.now())
	}
	return true
}

// addRelated notes another signal that crossed on the incident's cohort.
func (m *Manager) addRelated(id string, f *fire) {
	var mitigated bool
	out, err := m.update(id, func(inc *Incident) bool {
		mitigated = false
		if inc.Status == StatusResolved {
			return false
		}
		inc.addEvent(Event{At: f.at.UTC(), Kind: EventSignal, Replica: m.o.Replica,
			Message: "related signal: " + describeDetection(f, nil)})
		was := inc.Status
		m.applyRollback(inc, f)
		mitigated = was == StatusOpen && inc.Status == StatusMitigated
		return true
	})
	if err != nil {
		m.log.Error("record related signal", "incident", id, "err", err)
		return
	}
	if out != nil && mitigated {
		m.det.startAfter(incidentKey(out.Trigger.Route, out.Trigger.Signal), *out.MitigatedAt)
		m.hooks.enqueue(EventMitigated, out, m.o.Replica, m.now())
	}
}

func (m *Manager) resetHealth(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.active[id]; a != nil {
		a.healthySince = time.Time{}
	}
}

// update applies fn to the freshest copy of incident id (the Redis copy
// when it is newer), bumps its version and persists it. fn may run more
// than once and must only change the incident it is given; it returns
// false to leave the incident as it is, in which case update returns nil.
func (m *Manager) update(id string, fn func(*Incident) bool) (*Incident, error) {
	m.umu.Lock()
	defer m.umu.Unlock()
	now := m.now().UTC()
	m.mu.Lock()
	a := m.active[id]
	var local *Incident
	shared := m.rs != nil
	if a != nil {
		local = a.inc.clone()
		shared = a.shared
	}
	m.mu.Unlock()
	if local == nil {
		var err error
		local, err = LoadIncident(m.o.DataDir, id)
		if errors.Is(err, ErrNotFound) && m.rs != nil {
			local, err = m.rs.get(id)
			if local == nil && err == nil {
				err = ErrNotFound
			}
		}
		if err != nil {
			return nil, err
		}
	}
	bump := func(inc *Incident) bool {
		if !fn(inc) {
			return false
		}
		inc.Version++
		inc.UpdatedAt = now
		return true
	}
	var out *Incident
	done := false
	if shared && m.rs != nil {
		res, err := m.rs.update(id, local, bump)
		if err != nil {
			m.log.Warn("redis unavailable; incident updated locally", "incident", id, "err", err)
		} else {
			out, done = res, true
		}
	}
	if !done {
		if bump(local) {
			out = local
		}
	}
	if out == nil {
		return nil, nil
	}
	m.mu.Lock()
	if a := m.active[id]; a != nil {
		a.inc = out.clone()
	}
	m.summaries[id] = versioned{out.Summary(), out.Version}
	m.mu.Unlock()
	m.persist(out)
	return out, nil
}

// persist writes inc to disk unless a newer version is already there.
func (m *Manager) persist(inc *Incident) {
	m.ioMu.Lock()
	defer m.ioMu.Unlock()
	if v, ok := m.written[inc.ID]; ok && inc.Version < v {
		return
	}
	if u, ok := m.unsaved[inc.ID]; ok && inc.Version < u.Version {
		return
	}
	if err := writeIncident(m.o.DataDir, inc); err != nil {
		if m.unsaved == nil {
			m.unsaved = make(map[string]*Incident)
		}
		if _, held := m.unsaved[inc.ID]; !held {
			m.log.Error("persist incident; kept in memory and retried every tick", "incident", inc.ID, "err", err)
		}
		m.unsaved[inc.ID] = inc.clone()
		return
	}
	delete(m.unsaved, inc.ID)
	m.written[inc.ID] = inc.Version
}

// retryUnsaved writes the incidents the disk refused, so that the file
// and memory disagree for at most one tick once space returns.
func (m *Manager) retryUnsaved() {
	m.ioMu.Lock()
	list := make([]*Incident, 0, len(m.unsaved))
	for _, inc := range m.unsaved {
		list = append(list, inc)
	}
	m.ioMu.Unlock()
	for _, inc := range list {
		m.persist(inc)
		m.ioMu.Lock()
		_, still := m.unsaved[inc.ID]
		m.ioMu.Unlock()
		if !still {
			m.log.Info("incident persisted after a refused write", "incident", inc.ID)
		}
	}
}

// Unsaved returns how many incidents have a newer version in memory than
// on disk because the disk refused it (retried every tick).
func (m *Manager) Unsaved() int {
	m.ioMu.Lock()
	defer m.ioMu.Unlock()
	return len(m.unsaved)
}

// tick refreshes the live cohorts, follows audit entries, and moves each
// active incident along: scope, mitigation, recovery.
func (m *Manager) tick() {
	now := m.now()
	if now.Sub(m.lastLive) >= time.Second {
		st := m.o.State.State()
		m.det.setLive(&st)
		m.lastLive = now
	}
	if now.Sub(m.lastPrune) >= m.cfg.window {
		m.det.prune(now)
		m.mu.Lock()
		keys := make(map[string]bool, len(m.byKey))
		for k := range m.byKey {
			keys[k] = true
		}
		m.mu.Unlock()
		m.det.dropOrphans(keys, now.Add(-max(orphanGrace, 2*m.cfg.window)))
		m.lastPrune = now
	}
	m.followAudit()
	for _, id := range m.activeIDs() {
		m.evaluate(id, now)
	}
	m.retryUnsaved()
}

// followAudit adds config changes made during an incident to its
// timeline. Rollbacks are recorded by the code that makes them.
func (m *Manager) followAudit() {
	if m.o.Audit == nil {
		return
	}
	var entries []AuditEntry
	entries, m.auditSeq = m.o.Audit.after(m.auditSeq)
	for _, e := range entries {
		if strings.HasPrefix(e.Source, "rollback:") || e.Source == SourceStartup {
			continue
		}
		for _, id := range m.activeIDs() {
			m.mu.Lock()
			a := m.active[id]
			route := ""
			var first time.Time
			if a != nil {
				route, first = a.inc.Trigger.Route, a.inc.FirstFailureAt
			}
			m.mu.Unlock()
			// Entries up to the first failure are the incident's frozen
			// changes, already on the timeline.
			if !e.At.After(first) || e.Route != "" && e.Route != route || len(relevantChanges(e.Changes, route)) == 0 {
				continue
			}
			narrowed := e
			narrowed.Changes = relevantChanges(e.Changes, route)
			if _, err := m.update(id, func(inc *Incident) bool {
				inc.addEvent(Event{At: e.At.UTC(), Kind: EventChange, Message: describeEntry(narrowed) + " (during the incident)", Replica: e.Replica})
				return true
			}); err != nil {
				m.log.Error("record change on incident", "incident", id, "err", err)
			}
		}
	}
}

func (m *Manager) evaluate(id string, now time.Time) {
	m.mu.Lock()
	a := m.active[id]
	if a == nil {
		m.mu.Unlock()
		return
	}
	inc := a.inc
	status, route, cohort, sig := inc.Status, inc.Trigger.Route, inc.Trigger.Cohort, a.sig
	detected, shared, lastRefresh := inc.DetectedAt, a.shared, a.lastRefresh
	var mitigatedAt time.Time
	if inc.MitigatedAt != nil {
		mitigatedAt = *inc.MitigatedAt
	}
	m.mu.Unlock()

	if shared && m.rs != nil && now.Sub(lastRefresh) >= refreshEvery {
		m.refresh(id, now)
		m.mu.Lock()
		a = m.active[id]
		if a != nil {
			status = a.inc.Status
			if a.inc.MitigatedAt != nil {
				mitigatedAt = *a.inc.MitigatedAt
			}
		}
		m.mu.Unlock()
		if a == nil {
			return
		}
	}
	m.syncScope(id, now, false)
	m.mu.Lock()
	judge := false
	if a := m.active[id]; a != nil {
		judge = !a.shared || slices.ContainsFunc(a.inc.Waves, func(w Wave) bool { return w.Replica == m.o.Replica })
	}
	m.mu.Unlock()
	if !judge {
		// This replica follows an incident another replica detected: its
		// own windows say nothing about the failing traffic, so it leaves
		// mitigation and recovery to the replicas that saw it.
		return
	}

	window := m.cfg.window
	switch status {
	case StatusOpen:
		if sig == sigDeclared {
			if m.healthyFor(id, route, sig, now) >= window {
				m.mitigate(id, now, fmt.Sprintf("route %s stayed below every threshold for %s", route, fmtDur(window)))
			}
			return
		}
		o, live := m.det.check(route, cohort, sig, now)
		switch {
		case !live:
			m.mitigate(id, now, fmt.Sprintf("cohort %s no longer has live weight (set outside this incident: a reload or a manual rollback)", cohort))
		case o.verdict == verdictBelow && o.n > 0:
			m.mitigate(id, now, fmt.Sprintf("%s fell below its threshold (%s over %d requests)", signalName(sig), fmtObserved(sig, o.observed, o.threshold), o.n))
		case o.verdict == verdictBelow && now.Sub(later(detected, m.created)) >= window:
			// Nothing was done and nothing shows a fix: not a mitigation.
			m.resolveQuiet(id, now, window)
		}
	case StatusMitigated:
		if d := m.healthyFor(id, route, sig, now); d >= window && now.Sub(mitigatedAt) >= window {
			m.resolve(id, now)
		}
	}
}

// healthyFor returns how long the route's live traffic has stayed below
// every rate threshold (and the incident's own signal).
func (m *Manager) healthyFor(id, route string, sig int, now time.Time) time.Duration {
	crossing, _, _ := m.det.routeHealth(route, sig, now)
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.active[id]
	if a == nil {
		return 0
	}
	if crossing {
		a.healthySince = time.Time{}
		return 0
	}
	if a.healthySince.IsZero() {
		a.healthySince = now
	}
	return now.Sub(a.healthySince)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// refresh adopts a newer copy from Redis (another replica's update).
func (m *Manager) refresh(id string, now time.Time) {
	m.mu.Lock()
	if a := m.active[id]; a != nil {
		a.lastRefresh = now
	}
	m.mu.Unlock()
	remote, err := m.rs.get(id)
	if err != nil || remote == nil {
		return
	}
	m.mu.Lock()
	a := m.active[id]
	adopt := a != nil && remote.Version > a.inc.Version
	if adopt {
		if remote.Status == StatusMitigated && a.inc.Status != StatusMitigated {
			a.healthySince = time.Time{}
		}
		a.inc = remote.clone()
		m.summaries[id] = versioned{remote.Summary(), remote.Version}
	}
	m.mu.Unlock()
	if !adopt {
		return
	}
	m.persist(remote)
	switch remote.Status {
	case StatusResolved:
		m.finish(id)
	case StatusMitigated:
		if remote.MitigatedAt != nil {
			m.det.startAfter(incidentKey(remote.Trigger.Route, remote.Trigger.Signal), *remote.MitigatedAt)
		}
	}
}

// syncScope copies the tracker's counts and after samples into the
// incident, at most once per second unless force or new after samples.
func (m *Manager) syncScope(id string, now time.Time, force bool) {
	m.mu.Lock()
	a := m.active[id]
	if a == nil {
		m.mu.Unlock()
		return
	}
	key, version, last, base := a.key, a.trackerVersion, a.lastSync, a.base
	nAfter := len(a.inc.Samples.After)
	m.mu.Unlock()
	snap := m.det.trackerSnapshot(key, version)
	if !snap.ok {
		return
	}
	if !force && now.Sub(last) < syncEvery && !(len(snap.after) > 0 && nAfter < samplesPerPhase) {
		return
	}
	contrib := addContribution(base, Contribution{Scope: snap.scope, Cost: snap.cost})
	_, err := m.update(id, func(inc *Incident) bool {
		if inc.Contributions == nil {
			inc.Contributions = map[string]Contribution{}
		}
		inc.Contributions[m.o.Replica] = contrib
		inc.sumContributions()
		inc.Samples.After = samples(mergeSamples(pointers(inc.Samples.After), snap.after, true))
		return true
	})
	if err != nil {
		m.log.Error("update incident scope", "incident", id, "err", err)
		return
	}
	m.mu.Lock()
	if a := m.active[id]; a != nil {
		a.trackerVersion, a.lastSync = snap.version, now
	}
	m.mu.Unlock()
}

func pointers(rs []capture.Record) []*capture.Record {
	out := make([]*capture.Record, len(rs))
	for i := range rs {
		out[i] = &rs[i]
	}
	return out
}

func addContribution(a, b Contribution) Contribution {
	x := Incident{Contributions: map[string]Contribution{"a": a, "b": b}}
	x.sumContributions()
	return Contribution{Scope: x.Scope, Cost: x.Cost}
}

// mitigate moves an open incident to mitigated.
func (m *Manager) mitigate(id string, now time.Time, why string) {
	at := now.UTC()
	out, err := m.update(id, func(inc *Incident) bool {
		if inc.Status != StatusOpen {
			return false
		}
		m.mitigateInPlace(inc, at, why)
		return true
	})
	if err != nil {
		m.log.Error("mitigate incident", "incident", id, "err", err)
		return
	}
	if out == nil {
		return
	}
	m.log.Info("incident mitigated", "incident", id, "why", why)
	m.resetHealth(id)
	m.det.startAfter(incidentKey(out.Trigger.Route, out.Trigger.Signal), at)
	m.hooks.enqueue(EventMitigated, out, m.o.Replica, now)
}

// resolve moves a mitigated incident to resolved and stops following it.
func (m *Manager) resolve(id string, now time.Time) {
	m.syncScope(id, now, true)
	at := now.UTC()
	window := m.cfg.window
	var route string
	out, err := m.update(id, func(inc *Incident) bool {
		if inc.Status != StatusMitigated {
			return false
		}
		route = inc.Trigger.Route
		inc.Status = StatusResolved
		inc.Resolution = ResolutionRecovered
		inc.ResolvedAt = &at
		_, n, failed := m.det.routeHealth(route, signalIndex(inc.Trigger.Signal), now)
		inc.addEvent(Event{At: at, Kind: EventRecovery, Replica: m.o.Replica,
			Message: fmt.Sprintf("resolved: route %s stayed below its thresholds for %s after mitigation (%d requests, %d failed in the last window)", route, fmtDur(window), n, failed)})
		return true
	})
	if err != nil {
		m.log.Error("resolve incident", "incident", id, "err", err)
		return
	}
	if out == nil {
		m.mu.Lock()
		a := m.active[id]
		resolved := a != nil && a.inc.Status == StatusResolved
		m.mu.Unlock()
		if resolved {
			m.finish(id)
		}
		return
	}
	m.log.Info("incident resolved", "incident", id)
	m.hooks.enqueue(EventResolved, out, m.o.Replica, now)
	m.finish(id)
}

// finish stops following an incident that is resolved.
func (m *Manager) finish(id string) {
	m.mu.Lock()
	a := m.active[id]
	if a == nil {
		m.mu.Unlock()
		return
	}
	delete(m.active, id)
	if m.byKey[a.key] == id {
		delete(m.byKey, a.key)
	}
	inc := a.inc
	m.mu.Unlock()
	m.det.dropTracker(a.key)
	m.det.resetFiring(inc.Trigger.Route, a.sig)
	if m.rs != nil {
		if err := m.rs.release(inc); err != nil {
			m.log.Warn("release incident claim", "incident", id, "err", err)
		}
	}
}

// Declare opens an incident by hand on route with the same snapshot a
// detected one gets, now. A second declaration while one is open for the
// route becomes a wave of it. It returns the incident.
func (m *Manager) Declare(route, reason string) (*Incident, error) {
	now := m.now()
	st := m.o.State.State()
	if st.Route(route) == nil {
		return nil, fmt.Errorf("declare incident on %q: %w", route, ErrUnknownRoute)
	}
	f := m.det.declared(route, now)
	f.state = st
	f.reason = strings.TrimSpace(reason)
	if f.reason == "" {
		f.reason = "no reason given"
	}
	m.openMu.Lock()
	id := m.idForKey(f.key)
	if id == "" || !m.addWave(id, f) {
		m.det.ensureTracker(f.route, f.key, f.signal, "", predicate{sig: sigDeclared}, f.windowStart)
		inc := m.build(f)
		inc.Reason = f.reason
		// Reason is not frozen: the hash stays valid.
		id = m.open(inc, f)
	}
	m.openMu.Unlock()
	return m.Get(id)
}

// RecordRollback records a rollback made outside the manager (the admin
// endpoint): an audit entry with the diff, and on every open or mitigated
// incident of the route an action and a timeline event. An open incident
// on that cohort (or on the route as a whole) becomes mitigated.
func (m *Manager) RecordRollback(route, cohort, source string, before, after configs.State) {
	now := m.now().UTC()
	if source == "" {
		source = SourceRollbackManual
	}
	if m.o.Audit != nil {
		if _, err := m.o.Audit.Append(AuditEntry{
			At: now, Source: source, Route: route, Revision: after.Revision,
			Reason:  fmt.Sprintf("rolled back cohort %s", cohort),
			Changes: configs.Diff(before, after), Replica: m.o.Replica,
		}); err != nil {
			m.log.Error("audit of rollback failed", "route", route, "err", err)
		}
	}
	m.det.setLive(&after)
	msg := rollbackMessage(route, cohort, before, after) + " (" + source + ")"
	for _, id := range m.activeIDs() {
		m.mu.Lock()
		onRoute := m.active[id] != nil && m.active[id].inc.Trigger.Route == route
		m.mu.Unlock()
		if !onRoute {
			continue
		}
		var mitigated bool
		out, err := m.update(id, func(inc *Incident) bool {
			mitigated = false
			inc.Actions = append(inc.Actions, Action{At: now, Kind: "rollback", Message: msg, OK: true, Replica: m.o.Replica})
			inc.addEvent(Event{At: now, Kind: EventRollback, Message: msg, Replica: m.o.Replica})
			if inc.Status == StatusOpen && (inc.Trigger.Cohort == cohort || inc.Trigger.Cohort == "") {
				m.mitigateInPlace(inc, now, fmt.Sprintf("cohort %s rolled back (%s)", cohort, source))
				mitigated = true
			}
			return true
		})
		if err != nil {
			m.log.Error("record rollback on incident", "incident", id, "err", err)
			continue
		}
		if out != nil && mitigated {
			m.resetHealth(id)
			m.det.startAfter(incidentKey(out.Trigger.Route, out.Trigger.Signal), now)
			m.hooks.enqueue(EventMitigated, out, m.o.Replica, now)
		}
	}
}

// List returns every incident known here (and in Redis when configured),
// newest first.
func (m *Manager) List() []Summary {
	m.mu.Lock()
	all := make(map[string]versioned, len(m.summaries))
	for id, s := range m.summaries {
		all[id] = s
	}
	m.mu.Unlock()
	if m.rs != nil {
		remote, err := m.rs.list(1000)
		if err != nil {
			m.log.Warn("redis unavailable; listing local incidents", "err", err)
		}
		for _, ss := range remote {
			if cur, ok := all[ss.ID]; !ok || ss.Version > cur.version {
				all[ss.ID] = versioned{ss.Summary, ss.Version}
			}
		}
	}
	out := make([]Summary, 0, len(all))
	for _, s := range all {
		out = append(out, s.Summary)
	}
	slices.SortFunc(out, func(a, b Summary) int {
		if c := b.OpenedAt.Compare(a.OpenedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out
}

// Get returns a copy of the incident: the freshest of this replica's copy
// and the Redis one. Unknown IDs yield ErrNotFound.
func (m *Manager) Get(id string) (*Incident, error) {
	if !validID("inc", id) {
		return nil, fmt.Errorf("get incident %q: %w", id, ErrNotFound)
	}
	m.mu.Lock()
	var inc *Incident
	if a := m.active[id]; a != nil {
		inc = a.inc.clone()
	}
	m.mu.Unlock()
	if inc == nil {
		var err error
		inc, err = LoadIncident(m.o.DataDir, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if m.rs != nil {
		remote, err := m.rs.get(id)
		if err != nil {
			m.log.Warn("redis unavailable; serving the local copy", "incident", id, "err", err)
		}
		if remote != nil && (inc == nil || remote.Version > inc.Version) {
			inc = remote
		}
	}
	if inc == nil {
		return nil, fmt.Errorf("get incident %s: %w", id, ErrNotFound)
	}
	return inc, nil
}

// webhookDone records a webhook delivery as an action on its incident.
func (m *Manager) webhookDone(d delivery, attempts int, err error) {
	act := Action{At: m.now().UTC(), Kind: "webhook", OK: err == nil, Replica: m.o.Replica,
		Message: fmt.Sprintf("webhook %s notified: %s (%d attempt(s))", m.hooks.label(d.hook), d.event, attempts)}
	if err != nil {
		act.Message = fmt.Sprintf("webhook %s not notified: %s (%d attempt(s))", m.hooks.label(d.hook), d.event, attempts)
		act.Error = err.Error()
	}
	if _, uerr := m.update(d.incidentID, func(inc *Incident) bool {
		inc.Actions = append(inc.Actions, act)
		return true
	}); uerr != nil {
		m.log.Error("record webhook delivery", "incident", d.incidentID, "err", uerr)
	}
}

// addEvent inserts e keeping the timeline in time order.
func (i *Incident) addEvent(e Event) {
	e.At = e.At.UTC()
	n := len(i.Timeline)
	for n > 0 && i.Timeline[n-1].At.After(e.At) {
		n--
	}
	i.Timeline = slices.Insert(i.Timeline, n, e)
}

// incumbent is the cohort a rollback returns traffic to: the default cohort
// ("stable") when it has live weight, else the cohort with the most live
// weight (the first in target order on a tie).
func incumbent(rs *configs.RouteState) string {
	weights := map[string]int{}
	var order []string
	for _, t := range rs.Targets {
		if t.Weight <= 0 {
			continue
		}
		if _, ok := weights[t.Cohort]; !ok {
			order = append(order, t.Cohort)
		}
		weights[t.Cohort] += t.Weight
	}
	if weights[configs.DefaultCohort] > 0 {
		return configs.DefaultCohort
	}
	best := ""
	for _, c := range order {
		if best == "" || weights[c] > weights[best] {
			best = c
		}
	}
	return best
}
