package incidents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	Recent func(n int, keep func(*capture.Record) bool) []*capture.Record
	// Lookup returns the masked record of a gateway request ID, or nil
	// (capture's memory, for the lowest-scored samples of eval_drift).
	// Nil: eval_drift incidents carry the scores without their records.
	Lookup   func(id string) *capture.Record
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
	fleet   *fleet // nil without Redis
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
	views   viewCache  // decoded incident files for View (view.go)
	ioMu    sync.Mutex
	written map[string]int64     // incident ID → version on disk
	unsaved map[string]*Incident // incident ID → newest version the disk refused, retried every tick

	// Owned by the loop goroutine.
	auditSeq  int64
	lastLive  time.Time
	liveGen   liveGen // see refreshLive
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
	m.refreshLive()
	if o.Redis != nil {
		m.rs = newRedisStore(o.Redis)
		m.fleet = newFleet(o.Redis, o.Replica, m.log)
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
			predicateFor(sig, obs{threshold: inc.Trigger.Threshold, observed: inc.Trigger.Observed, baseline: inc.Trigger.Baseline}), m.created)
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
		if m.fleet != nil {
			m.wg.Add(1)
			go m.fleetLoop()
		}
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
