package configs

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Warnings lists what in a valid config is probably not what its author
// meant: a match glob that an earlier glob shadows (a model is routed by its
// exact route name first, then by the first glob in config order that
// matches), a glob that catches every model name, and a provider base_url
// without a version prefix. `cairn check` prints them; none stops a load.
func (c *Config) Warnings() []string {
	var out []string
	type glob struct {
		route, field, g string
	}
	var earlier []glob
	idx := newShadowIndex() // the first earlier glob that globCovers one, in O(1) of the routes
	for i, r := range c.Routes {
		shadowed := 0
		for j, g := range r.Match {
			f := fmt.Sprintf("routes[%d].match[%d]", i, j)
			if g == "*" {
				out = append(out, fmt.Sprintf("%s: %q catches every model name without a '/': a typo in a client's model goes to route %q instead of getting 404 model_not_found", f, g, r.Name))
			}
			if o := idx.coveredBy(g); o >= 0 {
				e := earlier[o]
				if e.route == r.Name {
					out = append(out, fmt.Sprintf("%s: %q is never used: %s %q of the same route already matches every model it matches", f, g, e.field, e.g))
				} else {
					out = append(out, fmt.Sprintf("%s: %q is never used: %s %q of route %q comes first and matches every model it matches", f, g, e.field, e.g, e.route))
				}
				shadowed++
			}
			earlier = append(earlier, glob{r.Name, f, g})
			idx.add(g)
		}
		if len(r.Match) > 0 && shadowed == len(r.Match) {
			out = append(out, fmt.Sprintf("routes[%d]: every match glob of route %q is shadowed: only requests for the model %q reach it", i, r.Name, r.Name))
		}
	}
	for i, p := range c.Providers {
		u, err := url.Parse(p.BaseURL)
		if err != nil || u.Host == "" || (p.Kind != "" && p.Kind != KindOpenAI) {
			continue
		}
		if strings.Trim(u.Path, "/") == "" {
			out = append(out, fmt.Sprintf("providers[%d].base_url: %q has no version prefix: requests go to %s/chat/completions; most OpenAI-compatible servers want %s/v1",
				i, p.BaseURL, strings.TrimSuffix(p.BaseURL, "/"), strings.TrimSuffix(p.BaseURL, "/")))
		}
	}
	return append(out, c.kindWarnings()...)
}

// globCovers reports whether every name that later matches is also
// matched by earlier (path.Match syntax). It is exact for the cases that
// occur in configs (identical globs, "*", a literal later glob, "prefix*"
// or "*suffix" earlier globs) and otherwise answers false: it never warns
// wrongly, but may miss an exotic shadowing.
func globCovers(earlier, later string) bool {
	const meta = `*?[\`
	if earlier == later {
		return true
	}
	if strings.Contains(later, `\`) {
		return false
	}
	if !strings.ContainsAny(later, meta) {
		ok, _ := path.Match(earlier, later)
		return ok
	}
	// "*" is the prefix case with an empty prefix. "prefix*" covers any glob whose literal start begins with prefix
	// (path.Match's * stops at '/', so neither side may hold one).
	if p, ok := strings.CutSuffix(earlier, "*"); ok && !strings.ContainsAny(p, meta) && !strings.Contains(later, "/") {
		lit := later[:strings.IndexAny(later, meta)]
		return strings.HasPrefix(lit, p)
	}
	if s, ok := strings.CutPrefix(earlier, "*"); ok && !strings.ContainsAny(s, meta) && !strings.Contains(later, "/") {
		lit := later[strings.LastIndexAny(later, meta)+1:]
		return strings.HasSuffix(lit, s)
	}
	return false
}
