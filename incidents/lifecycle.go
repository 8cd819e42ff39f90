package incidents

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairnhq/cairn/capture"
)

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
		local = m.held(id) // newer than the file while the disk refuses it
	}
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

// held returns a copy of the newest version of incident id that the disk
// refused (retried every tick), or nil when the file is up to date.
func (m *Manager) held(id string) *Incident {
	m.ioMu.Lock()
	defer m.ioMu.Unlock()
	if u := m.unsaved[id]; u != nil {
		return u.clone()
	}
	return nil
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
		m.refreshLive()
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
