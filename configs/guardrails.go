package configs

import (
	"fmt"
	"math"
	"strings"
)

// Refusal configures how a chat response is judged a refusal, beside the
// wire's own signs (a non-null message.refusal, finish_reason
// content_filter).
type Refusal struct {
	// Patterns are phrases a refusal's content starts with, matched
	// case-insensitively after leading white space, with typographic
	// apostrophes (’) read as '. Empty under detection.refusal: the
	// built-in English list (DefaultRefusalPatterns). Under a route, a
	// non-empty list replaces detection.refusal.patterns for that route.
	Patterns []string `yaml:"patterns" json:"patterns,omitempty"`
}

// DefaultRefusalPatterns are the openings of the refusals English-speaking
// models write when they decline. Each is specific enough that an answer
// that helps does not start with it.
var DefaultRefusalPatterns = []string{
	"I'm sorry, but I can't",
	"I'm sorry, but I cannot",
	"I'm sorry, I can't",
	"I'm sorry, I cannot",
	"I am sorry, but I can't",
	"I am sorry, but I cannot",
	"I apologize, but I can't",
	"I apologize, but I cannot",
	"Sorry, but I can't",
	"Sorry, I can't",
	"I can't help with",
	"I cannot help with",
	"I can't assist with",
	"I cannot assist with",
	"I can't provide",
	"I cannot provide",
	"I can't comply",
	"I cannot comply",
	"I'm unable to help",
	"I'm unable to assist",
	"I'm unable to provide",
	"I am unable to help",
	"I am unable to assist",
	"I am unable to provide",
	"I'm not able to help",
	"I'm not able to provide",
	"I won't be able to help",
	"I must decline",
	"As an AI language model, I can't",
	"As an AI language model, I cannot",
}

// Limits of refusal patterns: they run on every chat response.
const (
	maxRefusalPatterns     = 200
	maxRefusalPatternBytes = 256
)

// Defaults of the guardrail signals, in points (hundredths of a rate).
const (
	DefaultRefusalInvestigatePoints = 5
	DefaultRefusalPagePoints        = 10
)

// RefusalPatterns returns the patterns in force for route r: the route's
// own when it sets some, else detection.refusal.patterns, else the
// built-in list. r may be nil.
func (c *Config) RefusalPatterns(r *Route) []string {
	if r != nil && r.Refusal != nil && len(r.Refusal.Patterns) > 0 {
		return r.Refusal.Patterns
	}
	if len(c.Detection.Refusal.Patterns) > 0 {
		return c.Detection.Refusal.Patterns
	}
	return DefaultRefusalPatterns
}

// guardrailDefaults fills the refusal shift's default levels; the PII leak
// rate's default is its zero value (page on any sustained leak).
func (d *Detection) guardrailDefaults() {
	if d.RefusalRatePoints == (Threshold{}) {
		d.RefusalRatePoints = Threshold{Investigate: DefaultRefusalInvestigatePoints, Page: DefaultRefusalPagePoints}
	}
}

// guardrails validates the refusal and PII-leak fields.
func (v *validator) guardrails(c *Config) {
	d := &c.Detection
	t := d.RefusalRatePoints
	switch {
	case t.Page < 0 && t.Investigate <= 0:
		// Disabled.
	case !finiteIn(t.Page, 0, 100) || !finiteIn(t.Investigate, 0, 100):
		v.errf("detection.refusal_rate_points: levels must be points in (0, 100] (or a negative page to disable)")
	case t.Investigate != 0 && t.Page != 0 && t.Investigate >= t.Page:
		// As every two-level threshold (levels): investigate comes first.
		v.errf("detection.refusal_rate_points: investigate %v must be below page %v", t.Investigate, t.Page)
	}
	p := d.PIILeakRate
	switch {
	case p.Page < 0 && p.Investigate <= 0:
	case !finiteIn(p.Page, 0, 1) || !finiteIn(p.Investigate, 0, 1) || p.Page == 1 || p.Investigate == 1:
		v.errf("detection.pii_leak_rate: levels must be fractions in [0, 1) (0: any sustained leak; a negative page disables)")
	case p.Investigate != 0 && p.Investigate >= p.Page:
		v.errf("detection.pii_leak_rate: investigate %v must be below page %v", p.Investigate, p.Page)
	}
	v.refusalPatterns("detection.refusal.patterns", d.Refusal.Patterns)
	for i := range c.Routes {
		if r := c.Routes[i].Refusal; r != nil {
			v.refusalPatterns(fmt.Sprintf("routes[%d].refusal.patterns", i), r.Patterns)
		}
	}
}

func finiteIn(x, lo, hi float64) bool {
	return !math.IsNaN(x) && x >= lo && x <= hi
}

func (v *validator) refusalPatterns(f string, ps []string) {
	if len(ps) > maxRefusalPatterns {
		v.errf("%s: %d patterns; at most %d", f, len(ps), maxRefusalPatterns)
	}
	for i, p := range ps {
		switch {
		case strings.TrimSpace(p) == "":
			v.errf("%s[%d]: empty pattern (it would match every response)", f, i)
		case len(p) > maxRefusalPatternBytes:
			v.errf("%s[%d]: %d bytes; at most %d", f, i, len(p), maxRefusalPatternBytes)
		}
	}
}
