package configs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// What an Override replaces.
const (
	// OverrideCohort sets a cohort's live weight to 0 (a rollback).
	OverrideCohort = "cohort"
	// OverridePrompt serves another prompt version (a prompt revert).
	OverridePrompt = "prompt"
)

// Override is one mitigation layered over the config file: a cohort set to
// weight 0 or a route's prompt reverted. It names who made it, why, when
// and for which incident, and the Basis it was made on: the SHA-256 of the
// overridden part of the route as configured (its targets, or its
// prompt). An override holds while the config's part still has that basis;
// a reload that changes the part clears it. Its JSON is part of the
// external interface (/admin/state, snapshots, the override store).
type Override struct {
	Route string `json:"route"`
	What  string `json:"what"`
	// Cohort is the cohort at weight 0 (What == OverrideCohort).
	Cohort string `json:"cohort,omitempty"`
	// Prompt is the prompt served while the override holds (What ==
	// OverridePrompt).
	Prompt *Prompt `json:"prompt,omitempty"`
	Basis  string  `json:"basis"`
	// Source is the audit source that made it, e.g. rollback:auto.
	Source   string    `json:"source"`
	Actor    string    `json:"actor,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Incident string    `json:"incident,omitempty"`
	Replica  string    `json:"replica,omitempty"`
	At       time.Time `json:"at"`
}

// Key identifies the overridden part: one override per route prompt, one
// per route cohort.
func (o *Override) Key() string {
	if o.What == OverridePrompt {
		return o.Route + "/prompt"
	}
	return o.Route + "/cohort/" + o.Cohort
}

// TargetsBasis returns the SHA-256 (hex) of the route's targets as
// configured: what a cohort override is made on.
func (r *Route) TargetsBasis() string {
	type t struct {
		Provider, Model, Cohort string
		Weight                  int
	}
	ts := make([]t, 0, len(r.Targets))
	for _, x := range r.Targets {
		c := x.Cohort
		if c == "" {
			c = DefaultCohort
		}
		ts = append(ts, t{x.Provider, x.Model, c, x.W()})
	}
	b, _ := json.Marshal(ts)
	return hashHex(b)
}

// Basis returns the SHA-256 (hex) of the prompt's version and system text:
// what a prompt override is made on.
func (p Prompt) Basis() string {
	b, _ := json.Marshal([2]string{p.Version, p.System})
	return hashHex(b)
}

// SystemSHA256 returns the SHA-256 (hex) of the prompt's system text.
func (p Prompt) SystemSHA256() string { return hashHex([]byte(p.System)) }

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Overrides returns the overrides in force on every route, in route order.
func (s *State) Overrides() []Override {
	var out []Override
	for _, r := range s.Routes {
		out = append(out, r.Overrides...)
	}
	return out
}
