//go:build !race

package routing

import "testing"

// TestPlanAllocs is the allocation budget of the hot path: none when dst
// has room.
func TestPlanAllocs(t *testing.T) {
	tb, _ := newTestTable(t)
	r := tb.Route("support-bot")
	var buf [8]*Target
	for _, sticky := range []string{"", "user-42"} {
		if n := testing.AllocsPerRun(1000, func() { r.Plan(buf[:0], sticky, 12345) }); n != 0 {
			t.Errorf("Plan(%q) allocates %v times per call; want 0", sticky, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { tb.Match("support-bot") }); n != 0 {
		t.Errorf("Match(exact) allocates %v times per call; want 0", n)
	}
}
