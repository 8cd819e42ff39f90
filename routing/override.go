package routing

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/cairnhq/cairn/configs"
)

// Errors of overrides, wrapped with the route.
var (
	ErrNoOverride  = errors.New("no such override")
	ErrSamePrompt  = errors.New("the route already serves that prompt")
	ErrBadOverride = errors.New("bad override")
)

// basis returns the SHA-256 of the part of the route that o overrides, as
// t's config has it; "" when t has no such route.
func (t *Table) basis(o *configs.Override) string {
	r := t.byName[o.Route]
	if r == nil {
		return ""
	}
	if o.What == configs.OverridePrompt {
		p := r.Config.Prompt
		if r.configuredPrompt != nil {
			p = *r.configuredPrompt
		}
		return p.Basis()
	}
	return r.Config.TargetsBasis()
}

// applyOverrides returns a new table: t with every override of ovs whose
// basis matches t's config applied (cohorts at weight 0, prompts
// replaced), and the others listed as unapplied on their route. t is
// not changed; t must hold no overrides itself.
func (t *Table) applyOverrides(ovs []configs.Override) *Table {
	if len(ovs) == 0 {
		return t
	}
	ovs = slices.Clone(ovs)
	// Cohorts before prompts, then oldest first: the same set always
	// yields the same table on every replica.
	slices.SortFunc(ovs, func(a, b configs.Override) int {
		return cmp.Or(cmp.Compare(a.What, b.What), a.At.Compare(b.At), cmp.Compare(a.Key(), b.Key()))
	})
	out := t
	applied := map[string][]configs.Override{}
	unapplied := map[string][]configs.Override{}
	for _, o := range ovs {
		if t.byName[o.Route] == nil {
			continue // the route is gone; its overrides hold nothing
		}
		if o.Basis != t.basis(&o) {
			unapplied[o.Route] = append(unapplied[o.Route], o)
			continue
		}
		switch o.What {
		case configs.OverrideCohort:
			nt, err := out.WithoutCohort(o.Route, o.Cohort)
			if err != nil {
				unapplied[o.Route] = append(unapplied[o.Route], o)
				continue
			}
			out = nt
		case configs.OverridePrompt:
			if o.Prompt == nil {
				unapplied[o.Route] = append(unapplied[o.Route], o)
				continue
			}
			out = out.withPrompt(o.Route, *o.Prompt)
		default:
			unapplied[o.Route] = append(unapplied[o.Route], o)
			continue
		}
		applied[o.Route] = append(applied[o.Route], o)
	}
	for _, name := range slices.Sorted(mapKeys(applied, unapplied)) {
		out = out.replaceRoute(name, func(r *Route) {
			r.overrides = applied[name]
			r.unapplied = unapplied[name]
		})
	}
	return out
}

func mapKeys(ms ...map[string][]configs.Override) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}
}

// withPrompt returns a table in which the route serves p; the route's
// Config is a copy with that prompt, and State shows the configured one
// beside it.
func (t *Table) withPrompt(route string, p configs.Prompt) *Table {
	return t.replaceRoute(route, func(r *Route) {
		if r.configuredPrompt == nil {
			c := r.Config.Prompt
			r.configuredPrompt = &c
		}
		cfg := *r.Config
		cfg.Prompt = p
		r.Config = &cfg
	})
}

// replaceRoute returns a table whose route name is a copy of t's changed
// by fn; t is not changed.
func (t *Table) replaceRoute(name string, fn func(*Route)) *Table {
	r := t.byName[name]
	if r == nil {
		return t
	}
	c := *r
	fn(&c)
	nt := &Table{cfg: t.cfg, routes: slices.Clone(t.routes), byName: make(map[string]*Route, len(t.byName)), globs: t.globs}
	for i, x := range nt.routes {
		if x == r {
			nt.routes[i] = &c
		}
	}
	for k, x := range t.byName {
		if x == r {
			x = &c
		}
		nt.byName[k] = x
	}
	return nt
}

// check tells whether o can be applied to t (the live table) now.
func (t *Table) check(o *configs.Override) error {
	r := t.byName[o.Route]
	if r == nil {
		return fmt.Errorf("override %q: %w", o.Route, ErrUnknownRoute)
	}
	switch o.What {
	case configs.OverrideCohort:
		_, err := t.WithoutCohort(o.Route, o.Cohort)
		return err
	case configs.OverridePrompt:
		if o.Prompt == nil {
			return fmt.Errorf("override %q prompt: %w: no prompt", o.Route, ErrBadOverride)
		}
		if r.Config.Prompt == *o.Prompt {
			return fmt.Errorf("revert %q to %s: %w", o.Route, o.Prompt.Version, ErrSamePrompt)
		}
		return nil
	}
	return fmt.Errorf("override %q: %w: what must be %q or %q", o.Route, ErrBadOverride, configs.OverrideCohort, configs.OverridePrompt)
}
