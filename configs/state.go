package configs

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"
)

// State is the live view of a config: what is routed right now, after any
// rollbacks. GET /admin/state returns it and incident snapshots freeze it;
// its JSON field names are part of the external interface.
type State struct {
	Revision string       `json:"config_revision"`
	Release  string       `json:"release"`
	TakenAt  time.Time    `json:"taken_at"`
	Routes   []RouteState `json:"routes"`
	Keys     []KeyState   `json:"keys,omitempty"`
}

// RouteState is one route's live state.
type RouteState struct {
	Name         string         `json:"name"`
	Match        []string       `json:"match,omitempty"`
	Prompt       Prompt         `json:"prompt"`
	Flags        map[string]any `json:"flags,omitempty"`
	Sticky       string         `json:"sticky"`
	Targets      []TargetState  `json:"targets"`
	Fallbacks    []TargetState  `json:"fallbacks,omitempty"`
	Contract     ContractState  `json:"contract"`
	AutoRollback bool           `json:"auto_rollback"`
	// AutoRevertPrompt mirrors the route's auto_revert_prompt.
	AutoRevertPrompt bool `json:"auto_revert_prompt,omitempty"`
	// RolledBack lists cohorts whose weight a rollback set to 0.
	RolledBack []string `json:"rolled_back,omitempty"`
	// ConfiguredPrompt is the config file's prompt while an override
	// serves another one (Prompt).
	ConfiguredPrompt *Prompt `json:"configured_prompt,omitempty"`
	// Overrides are the mitigations in force on the route; Unapplied
	// those stored for the fleet that this replica does not apply (its
	// config's part differs from the one they were made on, or applying
	// would leave the route without a live cohort).
	Overrides []Override `json:"overrides,omitempty"`
	Unapplied []Override `json:"unapplied_overrides,omitempty"`
}

// TargetState is one target with its live and configured weights.
type TargetState struct {
	Provider         string `json:"provider"`
	Model            string `json:"model,omitempty"`
	Cohort           string `json:"cohort"`
	Weight           int    `json:"weight"`
	ConfiguredWeight int    `json:"configured_weight"`
}

// ContractState describes a route's contract.
type ContractState struct {
	Mode          string `json:"mode"`
	SchemaFile    string `json:"schema_file,omitempty"`
	SchemaSHA256  string `json:"schema_sha256,omitempty"`
	BufferStreams bool   `json:"buffer_streams,omitempty"`
}

// KeyState is a key's limits (never its secret).
type KeyState struct {
	Name       string   `json:"name"`
	RPM        int      `json:"rpm,omitempty"`
	TPM        int      `json:"tpm,omitempty"`
	Routes     []string `json:"routes,omitempty"`
	FailClosed bool     `json:"fail_closed,omitempty"`
}

// State returns the config's state with every configured weight live.
func (c *Config) State() State {
	s := State{Revision: c.Revision, Release: c.Release, TakenAt: time.Now().UTC()}
	for _, r := range c.Routes {
		rs := RouteState{
			Name:             r.Name,
			Match:            slices.Clone(r.Match),
			Prompt:           r.Prompt,
			Flags:            maps.Clone(r.Flags),
			Sticky:           r.Sticky,
			AutoRollback:     r.AutoRollback,
			AutoRevertPrompt: r.AutoRevertPrompt,
			Contract: ContractState{
				Mode: r.Contract.Mode, SchemaFile: r.Contract.SchemaFile,
				SchemaSHA256: r.Contract.SchemaSHA256, BufferStreams: r.Contract.BufferStreams,
			},
		}
		for _, t := range r.Targets {
			rs.Targets = append(rs.Targets, TargetState{Provider: t.Provider, Model: t.Model, Cohort: t.Cohort, Weight: t.W(), ConfiguredWeight: t.W()})
		}
		for _, t := range r.Fallbacks {
			rs.Fallbacks = append(rs.Fallbacks, TargetState{Provider: t.Provider, Model: t.Model, Cohort: t.Cohort})
		}
		s.Routes = append(s.Routes, rs)
	}
	for _, k := range c.Keys {
		s.Keys = append(s.Keys, KeyState{Name: k.Name, RPM: k.RPM, TPM: k.TPM, Routes: slices.Clone(k.Routes), FailClosed: k.FailClosed})
	}
	return s
}

// Route returns the named route's state, or nil.
func (s *State) Route(name string) *RouteState {
	for i := range s.Routes {
		if s.Routes[i].Name == name {
			return &s.Routes[i]
		}
	}
	return nil
}

// routeMap indexes routes by name; the first of a name wins, as in Route.
func routeMap(rs []RouteState) map[string]*RouteState {
	m := make(map[string]*RouteState, len(rs))
	for i := range rs {
		if _, dup := m[rs[i].Name]; !dup {
			m[rs[i].Name] = &rs[i]
		}
	}
	return m
}

// Cohorts returns the route's cohorts that have live weight, in target order.
func (r *RouteState) Cohorts() []string {
	var out []string
	for _, t := range r.Targets {
		if t.Weight > 0 && !slices.Contains(out, t.Cohort) {
			out = append(out, t.Cohort)
		}
	}
	return out
}

// Change is one difference between two states, e.g.
// {Path: "routes[support-bot].prompt.version", From: "v17", To: "v18"}.
type Change struct {
	Path string `json:"path"`
	From any    `json:"from"`
	To   any    `json:"to"`
	// Diff is a unified diff of From and To for a prompt's system text
	// (set where an incident lists the change).
	Diff string `json:"diff,omitempty"`
}

// Diff lists what changed from a to b: release, revision, routes added or
// removed, and per route the match globs, prompt, flags, sticky rule,
// targets and their weights, fallbacks and contract; and key limits, route
// allow-lists and fail_closed.
func Diff(a, b State) []Change {
	var out []Change
	add := func(p string, from, to any) {
		if !reflect.DeepEqual(from, to) {
			out = append(out, Change{Path: p, From: from, To: to})
		}
	}
	add("release", a.Release, b.Release)
	add("config_revision", a.Revision, b.Revision)
	// Routes by name: State.Route per route is quadratic in 10,000 routes (issue 15).
	aRoutes, bRoutes := routeMap(a.Routes), routeMap(b.Routes)
	for _, ra := range a.Routes {
		rb := bRoutes[ra.Name]
		if rb == nil {
			add(fmt.Sprintf("routes[%s]", ra.Name), "present", nil)
			continue
		}
		p := fmt.Sprintf("routes[%s]", ra.Name)
		add(p+".match", ra.Match, rb.Match)
		add(p+".prompt.version", ra.Prompt.Version, rb.Prompt.Version)
		add(p+".prompt.system", ra.Prompt.System, rb.Prompt.System)
		add(p+".sticky", ra.Sticky, rb.Sticky)
		add(p+".auto_rollback", ra.AutoRollback, rb.AutoRollback)
		add(p+".contract", ra.Contract, rb.Contract)
		for _, k := range unionKeys(ra.Flags, rb.Flags) {
			add(p+".flags."+k, normalize(ra.Flags[k]), normalize(rb.Flags[k]))
		}
		ta, tb := targetMap(ra.Targets), targetMap(rb.Targets)
		for _, k := range unionKeys(ta, tb) {
			x, okx := ta[k]
			y, oky := tb[k]
			switch {
			case !okx:
				add(p+".targets["+k+"]", nil, y)
			case !oky:
				add(p+".targets["+k+"]", x, nil)
			default:
				add(p+".targets["+k+"].weight", x.Weight, y.Weight)
			}
		}
		add(p+".fallbacks", ra.Fallbacks, rb.Fallbacks)
	}
	for _, rb := range b.Routes {
		if aRoutes[rb.Name] == nil {
			add(fmt.Sprintf("routes[%s]", rb.Name), nil, "present")
		}
	}
	ka, kb := keyMap(a.Keys), keyMap(b.Keys)
	for _, k := range unionKeys(ka, kb) {
		x, okx := ka[k]
		y, oky := kb[k]
		switch {
		case !okx:
			add("keys["+k+"]", nil, y)
		case !oky:
			add("keys["+k+"]", x, nil)
		default:
			add("keys["+k+"].rpm", x.RPM, y.RPM)
			add("keys["+k+"].tpm", x.TPM, y.TPM)
			add("keys["+k+"].routes", x.Routes, y.Routes)
			add("keys["+k+"].fail_closed", x.FailClosed, y.FailClosed)
		}
	}
	return out
}

func targetMap(ts []TargetState) map[string]TargetState {
	m := make(map[string]TargetState, len(ts))
	for _, t := range ts {
		m[t.Cohort+":"+t.Provider+"/"+t.Model] = t
	}
	return m
}

func keyMap(ks []KeyState) map[string]KeyState {
	m := make(map[string]KeyState, len(ks))
	for _, k := range ks {
		m[k.Name] = k
	}
	return m
}

func unionKeys[V any](a, b map[string]V) []string {
	ks := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// normalize turns YAML-decoded values into their JSON form so that equal
// values compare equal whatever decoder produced them.
func normalize(v any) any {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}
