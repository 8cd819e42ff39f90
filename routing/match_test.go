package routing

import (
	"fmt"
	"math/rand/v2"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/cairnhq/cairn/configs"
)

// globTable builds a table of n routes named route-0…route-{n-1}, route i
// matching globs(i), without going through YAML (10,000 routes decode in
// seconds under -race). Globs are set as configs.Load sets them.
func globTable(t testing.TB, n int, globs func(i int) []string) *Table {
	t.Helper()
	cfg := &configs.Config{Providers: []configs.Provider{{Name: "p", BaseURL: "http://127.0.0.1:1/v1"}}}
	for i := range n {
		g := globs(i)
		cfg.Routes = append(cfg.Routes, configs.Route{
			Name: fmt.Sprintf("route-%d", i), Match: g, Globs: g,
			Targets: []configs.Target{{Provider: "p", Cohort: configs.DefaultCohort}},
		})
	}
	return NewTable(cfg, NewBreakers(0, 0, nil))
}

// scanMatch is Match as it was before issue 15: exact name, then every
// glob in config order. The index and cache must answer exactly as it does.
func scanMatch(t *Table, model string) *Route {
	if r, ok := t.byName[model]; ok {
		return r
	}
	for _, r := range t.routes {
		for _, g := range r.Config.Globs {
			if ok, _ := path.Match(g, model); ok {
				return r
			}
		}
	}
	return nil
}

// countGlobs makes t's matcher count the patterns it tries and empties its
// cache.
func countGlobs(t *Table) *atomic.Int64 {
	var n atomic.Int64
	t.globs.match = func(p, name string) (bool, error) {
		n.Add(1)
		return path.Match(p, name)
	}
	t.globs.cache.init()
	return &n
}

// TestMatchSameAsScan checks first-match order semantics on random tables
// of globs of every shape (literal prefixes, suffixes, both, neither,
// classes, escapes, plain names), cold and from the cache, and on a table
// derived by a rollback, against the linear scan.
func TestMatchSameAsScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	pieces := []string{"a", "b", "ab", "gpt-", "4o", "-mini", "o", "*", "?", "[ab]", "[^a]", `\*`, "-", "claude"}
	word := func(meta bool) string {
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			p := pieces[rng.IntN(len(pieces))]
			if !meta && strings.ContainsAny(p, `*?[\`) {
				p = "x"
			}
			b.WriteString(p)
		}
		return b.String()
	}
	for round := range 40 {
		tb := globTable(t, 1+rng.IntN(30), func(int) []string {
			g := make([]string, rng.IntN(3))
			for j := range g {
				g[j] = word(true)
			}
			return g
		})
		names := []string{"", "route-0", "route-1"}
		for range 300 {
			names = append(names, word(false))
		}
		for _, tbl := range []*Table{tb, rolledBack(t, tb)} {
			for pass := range 2 { // cold, then from the cache
				for _, m := range names {
					if got, want := tbl.Match(m), scanMatch(tbl, m); got != want {
						t.Fatalf("round %d pass %d: Match(%q) = %s; want %s (globs %v)", round, pass, m, routeName(got), routeName(want), allGlobs(tbl))
					}
				}
			}
		}
	}
	// The hand-written cases of TestMatch, and the same after a rollback.
	tb, _ := newTestTable(t)
	for _, m := range []string{"gpt-4o", "gpt-4o-mini", "o3", "o3-mini", "claude", "gpt", "", "*", "o"} {
		for range 2 {
			if got, want := tb.Match(m), scanMatch(tb, m); got != want {
				t.Errorf("Match(%q) = %s; want %s", m, routeName(got), routeName(want))
			}
		}
	}
}

// rolledBack returns a table derived from tb by WithoutCohort, or tb when
// no route has two cohorts (globTable's never do).
func rolledBack(t *testing.T, tb *Table) *Table {
	t.Helper()
	for _, r := range tb.routes {
		if len(r.cohorts) > 1 {
			nt, err := tb.WithoutCohort(r.Name, r.cohorts[1].name)
			if err != nil {
				t.Fatal(err)
			}
			return nt
		}
	}
	return tb
}

func allGlobs(t *Table) [][]string {
	var out [][]string
	for _, r := range t.routes {
		out = append(out, r.Config.Globs)
	}
	return out
}

// TestMatchGlobsTriedFlat is the cost of a lookup among 10,000 glob
// routes, counted in patterns tried: a name's first lookup tries only the
// globs whose literal prefix or suffix it has, and a repeat, a miss
// included, tries none. Before issue 15 a miss tried all 10,000.
func TestMatchGlobsTriedFlat(t *testing.T) {
	const n = 10000
	tb := globTable(t, n, func(i int) []string {
		switch i % 3 {
		case 0:
			return []string{fmt.Sprintf("fam-%d-*", i)}
		case 1:
			return []string{fmt.Sprintf("*-v%d", i)}
		default:
			return []string{fmt.Sprintf("x%d-?-[ab]*", i), fmt.Sprintf("y%d*", i)}
		}
	})
	tried := countGlobs(tb)
	tests := []struct {
		model, want string
		maxTried    int64
	}{
		{"fam-9999-large", "route-9999", 1},
		{"tuned-v9997", "route-9997", 1},
		{"x9998-q-b1", "route-9998", 1},
		{"y9998", "route-9998", 1},
		{"unknown-model", "<nil>", 1},
		{"fam-9999", "<nil>", 1},
		{strings.Repeat("z", 100000), "<nil>", 0},
	}
	for _, tt := range tests {
		for pass := range 3 {
			tried.Store(0)
			got := tb.Match(tt.model)
			if routeName(got) != tt.want {
				t.Fatalf("Match(%.20q) = %s; want %s", tt.model, routeName(got), tt.want)
			}
			limit := tt.maxTried
			if pass > 0 && len(tt.model) <= maxCachedModel {
				limit = 0 // from the cache
			}
			if n := tried.Load(); n > limit {
				t.Errorf("Match(%.20q) pass %d tried %d patterns; want at most %d", tt.model, pass, n, limit)
			}
		}
	}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMatchCacheBounded sends a million distinct random model names (a
// client probing or misbehaving) through one table: the cache never holds
// more than matchCacheSize names, the live heap grows by at most the
// cache's bound, and every answer is still right.
func TestMatchCacheBounded(t *testing.T) {
	names := 1000000
	if testing.Short() || raceEnabled {
		names = 200000
	}
	tb := globTable(t, 1000, func(i int) []string { return []string{fmt.Sprintf("fam-%d-*", i)} })
	before := heapInUse()
	rng := rand.New(rand.NewPCG(1, 2))
	var buf []byte
	for i := range names {
		fam := rng.IntN(2000)
		buf = fmt.Appendf(buf[:0], "fam-%d-%x", fam, rng.Uint64())
		if i%7 == 0 { // longer than a cached name may be
			buf = append(buf, strings.Repeat("q", maxCachedModel)...)
		}
		got := tb.Match(string(buf))
		if (fam < 1000) != (got != nil) || got != nil && got.Name != fmt.Sprintf("route-%d", fam) {
			t.Fatalf("Match(%q) = %s; want route-%d if it exists", buf, routeName(got), fam)
		}
	}
	after := heapInUse()
	if n := tb.globs.cache.len(); n > matchCacheSize {
		t.Errorf("cache holds %d names; want at most %d", n, matchCacheSize)
	}
	const bound = matchCacheSize * (maxCachedModel + 64)
	grew := int64(after) - int64(before)
	t.Logf("%d random names: heap %d → %d bytes (%+d), cache %d names", names, before, after, grew, tb.globs.cache.len())
	if grew > bound {
		t.Errorf("heap grew by %d bytes after %d random names; want at most %d (the cache's bound)", grew, names, bound)
	}
	runtime.KeepAlive(tb)
}

// TestMatchCacheKeepsHotNames: names read again since they were stored
// survive a flood of names seen once (second chance), so the models
// clients really use keep hitting the cache, a miss among them.
func TestMatchCacheKeepsHotNames(t *testing.T) {
	tb := globTable(t, 100, func(i int) []string { return []string{fmt.Sprintf("fam-%d-*", i)} })
	tried := countGlobs(tb)
	hot := []string{"fam-1-a", "fam-2-b", "fam-3-c", "nothing-matches"}
	for range 2 {
		for _, m := range hot {
			tb.Match(m)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 200000 {
		if i%100 == 0 {
			for _, m := range hot {
				tb.Match(m)
			}
		}
		tb.Match(fmt.Sprintf("rnd-%x", rng.Uint64()))
	}
	tried.Store(0)
	for _, m := range hot {
		tb.Match(m)
	}
	if n := tried.Load(); n != 0 {
		t.Errorf("hot names tried %d patterns after a flood of 200,000 random names; want 0 (all cached)", n)
	}
}

// TestMatchReloadFreshCache: a reloaded table answers from its own globs,
// never from names the previous table cached, and a rollback keeps
// serving the rolled-back route (not the old one) for cached names.
func TestMatchReloadFreshCache(t *testing.T) {
	t1 := globTable(t, 3, func(i int) []string { return []string{fmt.Sprintf("fam-%d-*", i), "shared-*"} })
	l := NewLive(t1)
	for _, m := range []string{"fam-2-x", "shared-x", "gone-x"} {
		l.Load().Match(m)
	}
	t2 := globTable(t, 3, func(i int) []string {
		if i == 2 {
			return []string{"gone-*", "shared-*"}
		}
		return nil
	})
	l.Reload(t2)
	for m, want := range map[string]string{"fam-2-x": "<nil>", "shared-x": "route-2", "gone-x": "route-2"} {
		if got := l.Load().Match(m); routeName(got) != want {
			t.Errorf("after reload Match(%q) = %s; want %s", m, routeName(got), want)
		}
	}
	if t2.globs == t1.globs {
		t.Errorf("a new table shares the old table's matcher")
	}

	tb, _ := newTestTable(t)
	l = NewLive(tb)
	old := l.Load().Match("gpt-4o-x")
	if _, _, err := l.Rollback("support-bot", "canary"); err != nil {
		t.Fatal(err)
	}
	if got := l.Load().Match("gpt-4o-x"); got == nil || got.Name != old.Name || got != l.Load().Route(old.Name) {
		t.Errorf("after rollback Match(gpt-4o-x) = %p; want the new table's route %p", got, l.Load().Route(old.Name))
	}
	tb2, _ := l.Load().WithoutCohort("three", "canary")
	if got := tb2.Match("claude"); got != tb2.Route("catch-all") {
		t.Errorf("rolled-back table Match(claude) = %s; want its own catch-all", routeName(got))
	}
}

// TestMatchCacheOwnsName: the cache keeps its own copy of a name, so a
// name that aliases a request buffer (as unsafe, zero-copy parsing gives)
// is safe to pass and the buffer may be reused at once.
func TestMatchCacheOwnsName(t *testing.T) {
	tb := globTable(t, 2, func(i int) []string { return []string{fmt.Sprintf("fam-%d-*", i)} })
	buf := []byte("fam-1-model")
	if got := tb.Match(unsafe.String(&buf[0], len(buf))); routeName(got) != "route-1" {
		t.Fatalf("Match = %s; want route-1", routeName(got))
	}
	copy(buf, "zzz-0-model")
	if got := tb.Match("fam-1-model"); routeName(got) != "route-1" {
		t.Errorf("after the caller's buffer changed, Match(fam-1-model) = %s; want route-1", routeName(got))
	}
	if got := tb.Match("zzz-0-model"); got != nil {
		t.Errorf("Match(zzz-0-model) = %s; want none", routeName(got))
	}
}

// TestMatchConcurrent matches hot, random and colliding names from many
// goroutines while tables are swapped; with -race it checks the cache's
// lock-free sets, and every answer is checked against the scan.
func TestMatchConcurrent(t *testing.T) {
	tables := []*Table{
		globTable(t, 200, func(i int) []string { return []string{fmt.Sprintf("fam-%d-*", i), "*-shared"} }),
		globTable(t, 200, func(i int) []string { return []string{fmt.Sprintf("*-%d", i), fmt.Sprintf("fam-%d-*", 199-i)} }),
	}
	l := NewLive(tables[0])
	var wg sync.WaitGroup
	var bad atomic.Value
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range 10000 {
				var m string
				switch i % 3 {
				case 0:
					m = fmt.Sprintf("fam-%d-%d", rng.IntN(300), rng.IntN(300))
				case 1:
					m = fmt.Sprintf("x-%d-shared", rng.IntN(50))
				default:
					m = fmt.Sprintf("rnd-%x", rng.Uint64())
				}
				tb := l.Load()
				if got, want := tb.Match(m), scanMatch(tb, m); got != want {
					bad.Store(fmt.Sprintf("Match(%q) = %s; want %s", m, routeName(got), routeName(want)))
					return
				}
			}
		}()
	}
	for i := range 200 {
		l.Reload(tables[i%2])
		runtime.Gosched()
	}
	wg.Wait()
	if s := bad.Load(); s != nil {
		t.Fatal(s)
	}
}
