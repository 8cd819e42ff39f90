package incidents

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

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
	if m.revertPrompt(f, rs) {
		return
	}
	switch {
	case f.cohort == "" || rs == nil:
		return
	case !rs.AutoRollback:
		f.rbSkip = "auto_rollback is off for the route"
		return
	case m.o.Rollback == nil:
		f.rbSkip = "no rollback is wired"
		return
	case f.severity == configs.SeverityInvestigate:
		f.rbSkip = "the signal is at investigate severity; automatic rollback acts on page only"
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

// handleFire records a prepared signal: a new incident, a wave of the
// incident already open for its route and signal, or a related signal of
// the incident open on the same cohort.
func (m *Manager) handleFire(f *fire) {
	m.openMu.Lock()
	defer m.openMu.Unlock()
	if f.raise {
		if id := m.idForKey(f.key); id != "" {
			m.auditRollback(f, id)
			m.raise(id, f)
			return
		}
	}
	if f.related != "" {
		if id := m.idForKey(f.related); id != "" {
			m.auditRollback(f, id)
			m.addRelated(id, f)
			return
		}
		m.det.ensureTracker(f.route, f.key, f.signal, f.cohort, predicateFor(f.sig, f.o), f.windowStart)
	}
	if id := m.idForKey(f.key); id != "" {
		m.auditRollback(f, id)
		if m.addWave(id, f) {
			return
		}
	}
	m.det.ensureTracker(f.route, f.key, f.signal, f.cohort, predicateFor(f.sig, f.o), f.windowStart)
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
			BaselineN: f.o.baseN, Severity: fireSeverity(f), EvalGate: f.evalGate,
		},
		Severity: fireSeverity(f),
		Class:    f.class,
		Samples:  Samples{Before: samples(f.before), During: samples(f.during), After: []capture.Record{}, Scores: sampleScores(f)},
		Actions:  []Action{},
	}
	switch f.sig {
	case sigLatency:
		inc.Trigger.Ratio = m.cfg.latRatio
	case sigTokens:
		inc.Trigger.Ratio = m.cfg.tokRatio
	case sigCost:
		inc.Trigger.Ratio = m.cfg.costRatio
	}
	inc.Changes = withPromptDiffs(m.changesFor(f.route, inc.FirstFailureAt))
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
	p := predicateFor(f.sig, f.o)
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
	if f.rb.prompt != nil {
		m.applyPromptRevert(inc, f)
		return
	}
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
	m.noteRollback(f, incidentID)
	if f.rb == nil || f.rb.err != nil || m.o.Audit == nil {
		return
	}
	source, reason := SourceRollbackAuto, fmt.Sprintf("incident %s: %s on cohort %s", incidentID, f.signal, f.cohort)
	if f.rb.prompt != nil {
		source, reason = SourcePromptRevert, fmt.Sprintf("incident %s: %s after a prompt change; reverted to %s", incidentID, f.signal, orNone(f.rb.prompt.Version))
	}
	_, err := m.o.Audit.Append(AuditEntry{
		At: f.rb.at, Source: source, Actor: "cairn", Route: f.route,
		Reason:   reason,
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
				if err := m.rs.dropStaleClaim(f.route, f.cohort, f.signal, id); err != nil {
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
	var mitigated, raised bool
	out, err := m.update(id, func(inc *Incident) bool {
		mitigated, raised = false, false
		if inc.Status == StatusResolved {
			return false
		}
		inc.addEvent(Event{At: f.at.UTC(), Kind: EventSignal, Replica: m.o.Replica,
			Message: "related signal: " + describeDetection(f, nil)})
		// One incident per route and cohort gathers every signal: a
		// related signal at page makes the incident a page (and may act:
		// applyRollback below), a security one makes it a security incident.
		if fireSeverity(f) == configs.SeverityPage && inc.Severity == configs.SeverityInvestigate {
			inc.Severity = configs.SeverityPage
			inc.addEvent(Event{At: f.at.UTC(), Kind: EventSeverityRaised, Replica: m.o.Replica,
				Message: "raised from investigate to page by a related signal: " + describeDetection(f, nil)})
			raised = true
		}
		if f.class != "" && inc.Class == "" {
			inc.Class = f.class
		}
		was := inc.Status
		m.applyRollback(inc, f)
		mitigated = was == StatusOpen && inc.Status == StatusMitigated
		return true
	})
	if err != nil {
		m.log.Error("record related signal", "incident", id, "err", err)
		return
	}
	if out != nil && raised {
		m.log.Warn("incident raised to page by a related signal", "incident", id, "route", f.route, "signal", f.signal, "cohort", f.cohort)
		m.hooks.enqueue(EventSeverityRaised, out, m.o.Replica, m.now())
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
