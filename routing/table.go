// Package routing holds the live route table: an immutable snapshot built
// from a config, matched by model name, that picks a sticky cohort and a
// weighted target per request, orders fallbacks and skips upstreams whose
// circuit is open. A reload or a rollback builds a new Table and swaps it
// atomically in a Live; circuit-breaker health lives in Breakers and
// outlives tables.
//
// Nothing here sees HTTP: the proxy passes plain values in (model name,
// sticky value, a random number) and gets targets out.
package routing

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cairnhq/cairn/configs"
)

// Errors returned by Table.WithoutCohort and Live.Rollback, wrapped with
// the route and cohort names.
var (
	ErrUnknownRoute  = errors.New("unknown route")
	ErrUnknownCohort = errors.New("unknown cohort")
	ErrRolledBack    = errors.New("cohort already has weight 0")
	ErrLastCohort    = errors.New("cohort is the route's only live cohort")
)

// Target is one upstream choice of a route. Targets are immutable once
// their Table is built and may be used after the Table is replaced.
type Target struct {
	// Provider is the provider config (from the Table's config).
	Provider *configs.Provider
	// Model is the upstream model name; "" passes the client's model name
	// through.
	Model string
	// Cohort groups targets for sticky assignment and rollback.
	Cohort string
	// Weight is the live weight: the configured weight, or 0 once the
	// cohort was rolled back. Always 0 for fallbacks.
	Weight int
	// Health is the circuit breaker of this provider and upstream model,
	// shared by every target and table naming the same pair.
	Health *Health

	configured int
	label      string // see Label
}

// Label names the target as configured: "provider/model", or
// "provider/*" when the target passes the client's model name through.
// Metrics and detector series are labelled with it, so their number is
// bounded by the config, never by what clients send (issue 12.7).
func (t *Target) Label() string {
	if t.label != "" {
		return t.label
	}
	return targetLabel(t.Provider.Name, t.Model)
}

func targetLabel(provider, model string) string {
	if model == "" {
		model = "*"
	}
	return provider + "/" + model
}

// UpstreamModel returns the model name to send upstream for a client that
// asked for requested.
func (t *Target) UpstreamModel(requested string) string {
	if t.Model == "" {
		return requested
	}
	return t.Model
}

// Name returns "provider/model" for a client that asked for requested, as
// shown in x-cairn-target.
func (t *Target) Name(requested string) string {
	return t.Provider.Name + "/" + t.UpstreamModel(requested)
}

// Route is one route of a Table. It is immutable and safe for concurrent
// use; a rollback produces a new Route in a new Table.
type Route struct {
	// Name is the model name clients send to reach this route.
	Name string
	// Config is the route's config, shared with the Table's config. Read
	// only.
	Config *configs.Route
	// Targets are all configured targets in config order, including those
	// whose live Weight is 0.
	Targets []*Target
	// Fallbacks are tried in order after the primary target.
	Fallbacks []*Target

	cohorts    []cohort // cohorts with live weight, in target order
	total      int      // sum of live cohort weights
	rolledBack []string // cohorts set to 0 by rollbacks

	// Set by overrides (see Table.applyOverrides).
	configuredPrompt *configs.Prompt    // the config's prompt while another is served
	overrides        []configs.Override // applied
	unapplied        []configs.Override // stored but not applied here
}

// cohort is one cohort's live targets and their total weight.
type cohort struct {
	name    string
	weight  int
	targets []*Target // live weight > 0
}

// Cohorts returns the names of the route's cohorts with live weight, in
// target order.
func (r *Route) Cohorts() []string {
	out := make([]string, len(r.cohorts))
	for i, c := range r.cohorts {
		out[i] = c.name
	}
	return out
}

// RolledBack returns the cohorts whose weight a rollback set to 0.
func (r *Route) RolledBack() []string { return slices.Clone(r.rolledBack) }

// index fills the derived cohort fields from the targets' live weights.
func (r *Route) index() {
	r.cohorts, r.total = nil, 0
	for _, t := range r.Targets {
		if t.Weight <= 0 {
			continue
		}
		i := slices.IndexFunc(r.cohorts, func(c cohort) bool { return c.name == t.Cohort })
		if i < 0 {
			r.cohorts = append(r.cohorts, cohort{name: t.Cohort})
			i = len(r.cohorts) - 1
		}
		r.cohorts[i].weight += t.Weight
		r.cohorts[i].targets = append(r.cohorts[i].targets, t)
		r.total += t.Weight
	}
}

// Table is an immutable snapshot of the routes of one config, with any
// rollbacks applied. It is safe for concurrent use; to change routing,
// build a new Table and Store it in a Live.
type Table struct {
	cfg    *configs.Config
	routes []*Route
	byName map[string]*Route
	globs  *matcher // shared with the tables WithoutCohort derives
}

// NewTable builds the table of a validated config, taking each upstream's
// health from b. It panics if a target names a provider the config lacks,
// which configs.Load never lets through.
func NewTable(cfg *configs.Config, b *Breakers) *Table {
	providers := make(map[string]*configs.Provider, len(cfg.Providers))
	for i := range cfg.Providers {
		providers[cfg.Providers[i].Name] = &cfg.Providers[i]
	}
	target := func(route string, ct configs.Target, weighted bool) *Target {
		p, ok := providers[ct.Provider]
		if !ok {
			panic(fmt.Sprintf("BUG: routing.NewTable: route %q names unknown provider %q (config not validated)", route, ct.Provider))
		}
		c := ct.Cohort
		if c == "" {
			c = configs.DefaultCohort
		}
		t := &Target{Provider: p, Model: ct.Model, Cohort: c, Health: b.Health(ct.Provider, ct.Model), label: targetLabel(ct.Provider, ct.Model)}
		if weighted {
			t.configured = max(ct.W(), 0)
			t.Weight = t.configured
		}
		return t
	}
	t := &Table{cfg: cfg, byName: make(map[string]*Route, len(cfg.Routes))}
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		r := &Route{Name: rc.Name, Config: rc}
		for _, ct := range rc.Targets {
			r.Targets = append(r.Targets, target(rc.Name, ct, true))
		}
		for _, ct := range rc.Fallbacks {
			r.Fallbacks = append(r.Fallbacks, target(rc.Name, ct, false))
		}
		r.index()
		t.routes = append(t.routes, r)
		if _, dup := t.byName[r.Name]; !dup {
			t.byName[r.Name] = r
		}
	}
	t.globs = newMatcher(t.routes)
	return t
}

// Config returns the config the table was built from. Read only.
func (t *Table) Config() *configs.Config { return t.cfg }

// Routes returns the routes in config order. The slice must not be
// modified.
func (t *Table) Routes() []*Route { return t.routes }

// Route returns the route with this exact name, or nil.
func (t *Table) Route(name string) *Route { return t.byName[name] }

// Match returns the route for a client's model name: the route of that
// exact name first, then the first route (in config order) one of whose
// match globs (path.Match syntax) matches; nil if none does. Its cost does
// not grow with the number of routes: exact names are a map lookup, globs
// go through an index by literal prefix and suffix and a bounded cache of
// recent names, misses included (issue 15). Each table built by NewTable
// has a fresh cache, so a reload never answers from the old globs.
func (t *Table) Match(model string) *Route {
	if r, ok := t.byName[model]; ok {
		return r
	}
	if i := t.globs.route(model); i != noRoute {
		return t.routes[i]
	}
	return nil
}

// State returns the live state: the config's state with each target's live
// weight (ConfiguredWeight keeps the config's) and the rolled-back cohorts
// of each route. The result is a fresh value the caller owns.
func (t *Table) State() configs.State {
	s := t.cfg.State()
	for i := range s.Routes {
		rs := &s.Routes[i]
		r := t.byName[rs.Name]
		if r == nil || len(r.Targets) != len(rs.Targets) {
			continue
		}
		for j, tg := range r.Targets {
			rs.Targets[j].Weight = tg.Weight
			rs.Targets[j].ConfiguredWeight = tg.configured
			rs.Targets[j].Cohort = tg.Cohort
		}
		for j, tg := range r.Fallbacks {
			if j < len(rs.Fallbacks) {
				rs.Fallbacks[j].Cohort = tg.Cohort
			}
		}
		rs.RolledBack = slices.Clone(r.rolledBack)
		if r.configuredPrompt != nil {
			p := *r.configuredPrompt
			rs.ConfiguredPrompt = &p
			rs.Prompt = r.Config.Prompt
		}
		rs.Overrides = slices.Clone(r.overrides)
		rs.Unapplied = slices.Clone(r.unapplied)
	}
	return s
}

// WithoutCohort returns a new table in which the route's cohort has weight
// 0: its targets stay (and show in State) but are never picked. t is not
// changed. It fails if the route is unknown, the cohort is unknown or
// already at 0, or it is the route's only cohort with live weight.
func (t *Table) WithoutCohort(route, cohortName string) (*Table, error) {
	r := t.byName[route]
	if r == nil {
		return nil, fmt.Errorf("roll back %q: %w", route, ErrUnknownRoute)
	}
	known := slices.ContainsFunc(r.Targets, func(x *Target) bool { return x.Cohort == cohortName })
	if !known {
		return nil, fmt.Errorf("roll back %q cohort %q: %w", route, cohortName, ErrUnknownCohort)
	}
	live := slices.ContainsFunc(r.cohorts, func(c cohort) bool { return c.name == cohortName })
	if !live {
		return nil, fmt.Errorf("roll back %q cohort %q: %w", route, cohortName, ErrRolledBack)
	}
	if len(r.cohorts) == 1 {
		return nil, fmt.Errorf("roll back %q cohort %q: %w", route, cohortName, ErrLastCohort)
	}
	nr := &Route{Name: r.Name, Config: r.Config, Fallbacks: r.Fallbacks, configuredPrompt: r.configuredPrompt, overrides: r.overrides, unapplied: r.unapplied}
	nr.Targets = make([]*Target, len(r.Targets))
	for i, x := range r.Targets {
		if x.Cohort == cohortName {
			c := *x
			c.Weight = 0
			x = &c
		}
		nr.Targets[i] = x
	}
	nr.rolledBack = append(slices.Clone(r.rolledBack), cohortName)
	nr.index()

	nt := &Table{cfg: t.cfg, routes: slices.Clone(t.routes), byName: make(map[string]*Route, len(t.byName)), globs: t.globs}
	for i, x := range nt.routes {
		if x == r {
			nt.routes[i] = nr
		}
	}
	for k, x := range t.byName {
		if x == r {
			x = nr
		}
		nt.byName[k] = x
	}
	return nt, nil
}
