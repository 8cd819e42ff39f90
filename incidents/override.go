package incidents

import "github.com/cairnhq/cairn/configs"

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

// noteRollback names the incident on the override the responder's
// rollback made.
func (m *Manager) noteRollback(f *fire, incidentID string) {
	if f.rb == nil || f.rb.err != nil {
		return
	}
	if n, ok := m.o.Rollback.(incidentNoter); ok {
		n.NoteIncident(f.route, configs.OverrideCohort, f.cohort, incidentID)
	}
}
