package configs

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestShadowIndexSameAsPairs: for random sequences of globs of every shape
// (literal, prefix*, *suffix, both, classes, escapes, '/', "*"), the index
// names the same first covering glob as trying globCovers on each earlier
// glob in order, which is what Warnings did before issue 15.
func TestShadowIndexSameAsPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 16))
	pieces := []string{"a", "b", "ab", "gpt-", "4o", "/", "*", "?", "[ab]", `\*`, `\a`, "-x", "o"}
	glob := func() string {
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	for round := range 300 {
		idx := newShadowIndex()
		var earlier []string
		for range 1 + rng.IntN(60) {
			g := glob()
			want := -1
			for o, e := range earlier {
				if globCovers(e, g) {
					want = o
					break
				}
			}
			if got := idx.coveredBy(g); got != want {
				t.Fatalf("round %d: coveredBy(%q) = %d; want %d (earlier %q)", round, g, got, want, earlier)
			}
			earlier = append(earlier, g)
			idx.add(g)
		}
	}
}

// TestWarningsManyRoutes: Warnings over 20,000 glob routes finds the
// shadowed ones and takes well under a second (comparing every pair took
// about a minute).
func TestWarningsManyRoutes(t *testing.T) {
	const n = 20000
	c := &Config{}
	for i := range n {
		g := fmt.Sprintf("fam-%d-*", i)
		switch {
		case i%1000 == 999: // a literal that fam-1-* (route 1) already matches
			g = fmt.Sprintf("fam-1-%d", i)
		case i%1000 == 998:
			g = fmt.Sprintf("*-v%d", i)
		}
		c.Routes = append(c.Routes, Route{Name: fmt.Sprintf("r%d", i), Match: []string{g}})
	}
	start := time.Now()
	w := c.Warnings()
	took := time.Since(start)
	shadowed, routes := 0, 0
	for _, s := range w {
		if strings.Contains(s, `is never used: routes[1].match[0] "fam-1-*" of route "r1"`) {
			shadowed++
		}
		if strings.Contains(s, "every match glob of route") {
			routes++
		}
	}
	if want := n / 1000; shadowed != want || routes != want || len(w) != 2*want {
		t.Errorf("%d warnings name fam-1-* as the shadowing glob and %d a shadowed route, of %d; want %d, %d, %d:\n%.2000s",
			shadowed, routes, len(w), want, want, 2*want, strings.Join(w, "\n"))
	}
	t.Logf("Warnings over %d routes: %v, %d warnings", n, took, len(w))
	if took > 5*time.Second {
		t.Errorf("Warnings over %d routes took %v; want well under 5 s (linear, not pairs)", n, took)
	}
}
