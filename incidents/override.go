package incidents

import (
	"fmt"
	"strings"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// Audit sources of overrides (issue 17).
const (
	// SourcePromptRevert: a route's prompt reverted to a version it
	// served before.
	SourcePromptRevert = "prompt:revert"
	// SourceOverrideRestore: an override cleared by hand.
	SourceOverrideRestore = "override:restore"
	// SourceOverrideCleared: an override cleared by a reload that changed
	// the part it overrode.
	SourceOverrideCleared = "override:cleared"
)

// incidentNoter is a Rollbacker whose rollbacks are overrides that can name
// the incident they mitigate (routing.Live).
type incidentNoter interface {
	NoteIncident(route, what, cohort, incident string)
}

// promptReverter is a Rollbacker that can also serve an earlier prompt on
// a route (routing.Live).
type promptReverter interface {
	RevertPrompt(route string, p configs.Prompt) (before, after configs.State, err error)
}

// noteRollback names the incident on the override the responder's
// rollback or prompt revert made.
func (m *Manager) noteRollback(f *fire, incidentID string) {
	if f.rb == nil || f.rb.err != nil {
		return
	}
	n, ok := m.o.Rollback.(incidentNoter)
	if !ok {
		return
	}
	if f.rb.prompt != nil {
		n.NoteIncident(f.route, configs.OverridePrompt, "", incidentID)
		return
	}
	n.NoteIncident(f.route, configs.OverrideCohort, f.cohort, incidentID)
}

// revertPrompt reverts the route's prompt for a fire when the route asks
// for it (auto_revert_prompt), the failing cohort is the route's only live
// one (a 100% rollout: no canary to roll back), and the prompt changed
// within the lookback before the first failure: the prompt live before
// that change is served again. It reports whether it acted (or tried).
func (m *Manager) revertPrompt(f *fire, rs *configs.RouteState) bool {
	if rs == nil || !rs.AutoRevertPrompt || f.sig == sigDeclared {
		return false
	}
	live := rs.Cohorts()
	if len(live) != 1 || f.cohort != "" && f.cohort != live[0] {
		return false // a canary is rolled back first
	}
	if f.severity == configs.SeverityInvestigate {
		f.rbSkip = "the signal is at investigate severity; the automatic prompt revert acts on page only"
		return true
	}
	pr, ok := m.o.Rollback.(promptReverter)
	if !ok {
		return false
	}
	prev, ok := m.promptBefore(f.route, rs.Prompt, f.firstFailure)
	if !ok {
		return false
	}
	before, after, err := pr.RevertPrompt(f.route, prev)
	if err != nil {
		if st := m.o.State.State(); st.Route(f.route) != nil && st.Route(f.route).Prompt == prev {
			// Another replica's revert arrived first.
			f.rbSkip = fmt.Sprintf("the prompt was already reverted to %s", orNone(prev.Version))
			return true
		}
	}
	f.rb = &rollbackResult{at: m.now(), before: before, after: after, err: err, prompt: &prev}
	if err == nil {
		m.det.setLive(&after)
	}
	return true
}

// promptBefore finds the newest change of the route's prompt in the
// lookback before firstFailure (a reload, not a revert) and returns the
// prompt live before it; false when the prompt did not change or the
// live prompt is no longer the one that change installed.
func (m *Manager) promptBefore(route string, cur configs.Prompt, firstFailure time.Time) (configs.Prompt, bool) {
	if m.o.Audit == nil {
		return configs.Prompt{}, false
	}
	if firstFailure.IsZero() {
		firstFailure = m.now()
	}
	es := m.o.Audit.List(firstFailure.Add(-m.cfg.lookback))
	pv, ps := "routes["+route+"].prompt.version", "routes["+route+"].prompt.system"
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		switch {
		case e.At.After(firstFailure), e.Source == SourceStartup, strings.HasPrefix(e.Source, "override:"),
			e.Source == SourcePromptRevert, e.Source == SourceRollbackAuto, e.Source == SourceRollbackManual:
			continue
		}
		prev, installed, changed := cur, cur, false
		for _, c := range e.Changes {
			from, _ := c.From.(string)
			to, _ := c.To.(string)
			switch c.Path {
			case pv:
				prev.Version, installed.Version, changed = from, to, true
			case ps:
				prev.System, installed.System, changed = from, to, true
			}
		}
		if !changed {
			continue
		}
		if installed != cur || prev == cur || prev.Version == "" && prev.System == "" {
			return configs.Prompt{}, false
		}
		return prev, true
	}
	return configs.Prompt{}, false
}

// applyPromptRevert records the responder's prompt revert on inc; a
// successful revert mitigates it.
func (m *Manager) applyPromptRevert(inc *Incident, f *fire) {
	at := f.rb.at.UTC()
	from := ""
	if rs := f.rb.before.Route(f.route); rs != nil {
		from = rs.Prompt.Version
	} else if rs := f.state.Route(f.route); rs != nil {
		from = rs.Prompt.Version
	}
	msg := fmt.Sprintf("reverted the prompt of route %s from %s to %s", f.route, orNone(from), orNone(f.rb.prompt.Version))
	if f.rb.err != nil {
		msg = fmt.Sprintf("automatic prompt revert of route %s to %s failed", f.route, orNone(f.rb.prompt.Version))
		inc.Actions = append(inc.Actions, Action{At: at, Kind: "prompt_revert", Message: msg, Error: f.rb.err.Error(), Replica: m.o.Replica})
		inc.addEvent(Event{At: at, Kind: EventRollback, Message: msg + ": " + f.rb.err.Error(), Replica: m.o.Replica})
		return
	}
	inc.Actions = append(inc.Actions, Action{At: at, Kind: "prompt_revert", Message: msg, OK: true, Replica: m.o.Replica})
	inc.addEvent(Event{At: at, Kind: EventRollback, Replica: m.o.Replica,
		Message: fmt.Sprintf("automatic prompt revert: %s, %s after detection", msg, fmtDur(f.rb.at.Sub(f.at)))})
	m.mitigateInPlace(inc, at, fmt.Sprintf("route %s serves prompt %s again", f.route, orNone(f.rb.prompt.Version)))
}

// withPromptDiffs sets a unified diff of the system text on every prompt
// system change of the entries.
func withPromptDiffs(es []AuditEntry) []AuditEntry {
	for i := range es {
		var fromV, toV string
		for _, c := range es[i].Changes {
			if strings.HasSuffix(c.Path, ".prompt.version") {
				fromV, toV = fmt.Sprint(orNil(c.From)), fmt.Sprint(orNil(c.To))
			}
		}
		cs := make([]configs.Change, len(es[i].Changes))
		copy(cs, es[i].Changes)
		for j := range cs {
			if !strings.HasSuffix(cs[j].Path, ".prompt.system") {
				continue
			}
			a, _ := cs[j].From.(string)
			b, _ := cs[j].To.(string)
			cs[j].Diff = unifiedDiff(cs[j].Path+label(fromV), cs[j].Path+label(toV), a, b)
		}
		es[i].Changes = cs
	}
	return es
}

func orNil(v any) any {
	if v == nil {
		return ""
	}
	return v
}

func label(v string) string {
	if v == "" {
		return ""
	}
	return " (" + v + ")"
}
