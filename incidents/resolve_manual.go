package incidents

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cairnhq/cairn/configs"
)

// Issue 18: the console's resolve button. An investigator closes an
// incident by hand once they are satisfied; like a rollback it is audited.

// ResolutionManual marks an incident resolved by hand.
const ResolutionManual = "manual"

// SourceIncidentResolve is the audit source of a resolution by hand.
const SourceIncidentResolve = "incident:resolve"

// ErrAlreadyResolved is returned by Resolve for a resolved incident.
var ErrAlreadyResolved = errors.New("incident already resolved")

// Resolve resolves incident id by hand (resolution manual): a timeline
// event, an audit entry naming actor and reason, the resolved webhook, and
// the manager stops following it. It returns the incident as resolved.
func (m *Manager) Resolve(id, actor, reason string) (*Incident, error) {
	now := m.now()
	at := now.UTC()
	actor, reason = strings.TrimSpace(actor), strings.TrimSpace(reason)
	if actor == "" {
		actor = "unknown"
	}
	if reason == "" {
		reason = "no reason given"
	}
	if _, err := m.Get(id); err != nil {
		return nil, err
	}
	var was string
	out, err := m.update(id, func(inc *Incident) bool {
		if inc.Status == StatusResolved {
			return false
		}
		was = inc.Status
		inc.Status = StatusResolved
		inc.Resolution = ResolutionManual
		inc.ResolvedAt = &at
		inc.addEvent(Event{At: at, Kind: EventRecovery, Replica: m.o.Replica,
			Message: fmt.Sprintf("resolved by hand by %s (was %s): %s", actor, was, reason)})
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("resolve incident %s: %w", id, err)
	}
	if out == nil {
		return nil, fmt.Errorf("resolve incident %s: %w", id, ErrAlreadyResolved)
	}
	if m.o.Audit != nil {
		rev := ""
		if m.o.State != nil {
			rev = m.o.State.State().Revision
		}
		if _, err := m.o.Audit.Append(AuditEntry{
			At: at, Source: SourceIncidentResolve, Actor: actor, Route: out.Trigger.Route, Revision: rev,
			Reason: fmt.Sprintf("resolved incident %s by hand: %s", id, reason), Replica: m.o.Replica, Changes: []configs.Change{},
		}); err != nil {
			m.log.Error("audit of resolution failed", "incident", id, "err", err)
		}
	}
	m.log.Info("incident resolved by hand", "incident", id, "actor", actor)
	m.hooks.enqueue(EventResolved, out, m.o.Replica, now)
	m.finish(id)
	return out, nil
}
