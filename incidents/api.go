package incidents

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cairnhq/cairn/configs"
)

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
		// A finished incident whose newest version the disk refused:
		// that version, not the older file.
		inc = m.held(id)
	}
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
