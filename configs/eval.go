package configs

import (
	"math"
	"time"
)

// Eval configures the eval_drift signal: online eval scores posted to
// POST /admin/scores, joined to their requests, averaged per route,
// cohort and score name.
type Eval struct {
	// Scale is the [min, max] range of score values; a value outside it
	// is refused. "Points" are hundredths of the scale. Default [0, 1].
	Scale []float64 `yaml:"scale" json:"scale"`
	// Window is the rolling window of the score mean. Default 10m.
	Window Duration `yaml:"window" json:"window"`
	// MinScores is how many scores both the cohort and its baseline need
	// in the window before the signal can fire. Default 30.
	MinScores int `yaml:"min_scores" json:"min_scores"`
	// DropPoints is how far the cohort's mean must fall below its
	// baseline, in points. Default {investigate: 2, page: 5}.
	DropPoints Threshold `yaml:"drop_points" json:"drop_points"`
	// Names are the score names that feed detection. Empty: every name.
	Names []string `yaml:"names" json:"names,omitempty"`
}

func (e *Eval) defaults() {
	if len(e.Scale) == 0 {
		e.Scale = []float64{0, 1}
	}
	if e.Window == 0 {
		e.Window = Duration(10 * time.Minute)
	}
	if e.MinScores == 0 {
		e.MinScores = 30
	}
	if e.DropPoints == (Threshold{}) {
		e.DropPoints = Threshold{Investigate: 2, Page: 5}
	}
}

// Point returns one point of the scale: a hundredth of its range.
func (e *Eval) Point() float64 {
	if len(e.Scale) != 2 {
		return 0.01
	}
	return (e.Scale[1] - e.Scale[0]) / 100
}

func (v *validator) eval(f string, e *Eval) {
	if len(e.Scale) != 2 {
		v.errf("%s.scale: want [min, max], got %d numbers", f, len(e.Scale))
	} else if lo, hi := e.Scale[0], e.Scale[1]; !(lo < hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		v.errf("%s.scale: [%v, %v] must be two finite numbers, min below max", f, lo, hi)
	}
	v.posDur(f+".window", e.Window)
	v.positive(f+".min_scores", e.MinScores)
	v.levels(f+".drop_points", e.DropPoints, func(x float64) bool { return x > 0 && x <= 100 }, "is not in (0, 100] points")
	seen := map[string]bool{}
	for i, n := range e.Names {
		if !ValidScoreName(n) {
			v.errf("%s.names[%d]: %q must be 1–64 letters, digits, or _ . : -", f, i, n)
		} else if seen[n] {
			v.errf("%s.names[%d]: duplicate %q", f, i, n)
		}
		seen[n] = true
	}
}

// MaxScoreName bounds a score's name (and source).
const MaxScoreName = 64

// ValidScoreName reports whether s is a score name (or source) Cairn
// stores: 1–64 bytes of letters, digits, '_', '.', ':', '-' and '/'. The
// charset keeps personal data and markup out of records and metrics.
func ValidScoreName(s string) bool {
	if s == "" || len(s) > MaxScoreName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-' || c == '/') {
			return false
		}
	}
	return true
}

// rateThreshold checks both levels of a rate threshold.
func (v *validator) rateThreshold(f string, t Threshold) {
	v.levels(f, t, func(x float64) bool { return x > 0 && x <= 1 }, "is not in (0, 1]")
}

// ratioThreshold checks both levels of a ratio threshold.
func (v *validator) ratioThreshold(f string, t Threshold) {
	v.levels(f, t, func(x float64) bool { return x > 1 && !math.IsInf(x, 1) }, "must be greater than 1")
}

// levels checks that each set level is ok and investigate is below page.
func (v *validator) levels(f string, t Threshold, ok func(float64) bool, want string) {
	if t.Investigate != 0 && !ok(t.Investigate) {
		v.errf("%s.investigate: %v %s", f, t.Investigate, want)
	}
	if t.Page != 0 && !ok(t.Page) {
		if t.Investigate == 0 { // a bare number: the field itself
			v.errf("%s: %v %s", f, t.Page, want)
		} else {
			v.errf("%s.page: %v %s", f, t.Page, want)
		}
	}
	if t.Investigate != 0 && t.Page != 0 && t.Investigate >= t.Page {
		v.errf("%s: investigate %v must be below page %v", f, t.Investigate, t.Page)
	}
}

func defThreshold(t *Threshold, d Threshold) {
	if *t == (Threshold{}) {
		*t = d
	}
}
