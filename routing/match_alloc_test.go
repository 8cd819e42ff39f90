//go:build !race

package routing

import (
	"fmt"
	"testing"
)

// TestMatchGlobAllocs is the allocation budget of a glob lookup: none once
// the name is cached (hit or miss), and only the cache entry (and its copy
// of the name) the first time.
func TestMatchGlobAllocs(t *testing.T) {
	tb, _ := newTestTable(t)
	for _, m := range []string{"gpt-4o-mini", "o3", "claude"} {
		tb.Match(m)
		if n := testing.AllocsPerRun(1000, func() { tb.Match(m) }); n != 0 {
			t.Errorf("Match(%q) from the cache allocates %v times per call; want 0", m, n)
		}
	}
	none := globTable(t, 100, func(i int) []string { return []string{"fam-*"} })
	none.Match("unknown")
	if n := testing.AllocsPerRun(1000, func() { none.Match("unknown") }); n != 0 {
		t.Errorf("Match(unknown) from the cache allocates %v times per call; want 0", n)
	}
	names := make([]string, 200)
	for i := range names {
		names[i] = fmt.Sprintf("fam-%d", i)
	}
	i := 0
	if n := testing.AllocsPerRun(100, func() { none.Match(names[i]); i++ }); n > 2 {
		t.Errorf("Match(new name) allocates %v times per call; want at most 2 (the entry and its copy of the name)", n)
	}
}
