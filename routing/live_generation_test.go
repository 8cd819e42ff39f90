package routing

import "testing"

// TestLiveGeneration: every Reload and successful Rollback moves the
// generation; a refused rollback and reads do not.
func TestLiveGeneration(t *testing.T) {
	tb, _ := newTestTable(t)
	l := NewLive(tb)
	g0 := l.Generation()
	l.Load()
	l.Load().Match("claude")
	if g := l.Generation(); g != g0 {
		t.Errorf("reads moved the generation from %d to %d", g0, g)
	}
	l.Reload(tb)
	if g := l.Generation(); g != g0+1 {
		t.Errorf("after Reload generation = %d; want %d", g, g0+1)
	}
	if _, _, err := l.Rollback("support-bot", "canary"); err != nil {
		t.Fatal(err)
	}
	if g := l.Generation(); g != g0+2 {
		t.Errorf("after Rollback generation = %d; want %d", g, g0+2)
	}
	if _, _, err := l.Rollback("support-bot", "stable"); err == nil {
		t.Fatal("rolling back the last cohort succeeded")
	}
	if g := l.Generation(); g != g0+2 {
		t.Errorf("after a refused Rollback generation = %d; want %d", g, g0+2)
	}
}
