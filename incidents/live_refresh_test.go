package incidents

import (
	"github.com/cairnhq/cairn/configs"

	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// numberedLive is a fakeLive that numbers its changes, as routing.Live
// does, and counts the states built.
type numberedLive struct {
	*fakeLive
	gen    atomic.Uint64
	builds atomic.Int64
}

func (n *numberedLive) Generation() uint64 { return n.gen.Load() }

func (n *numberedLive) State() configs.State {
	n.builds.Add(1)
	return n.fakeLive.State()
}

// TestLiveRefreshOnlyOnChange: with a state source that numbers its
// changes, the manager builds the live state once at start and then only
// after a change, however many seconds pass; a source without numbers is
// still read every second.
func TestLiveRefreshOnlyOnChange(t *testing.T) {
	clock := newFakeClock()
	src := &numberedLive{fakeLive: newFakeLive(twoCohortState(true))}
	m, err := NewManager(Options{Detection: testDetection(30*time.Second, 10), DataDir: t.TempDir(), State: src, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if n := src.builds.Load(); n != 1 {
		t.Fatalf("NewManager built the state %d times; want 1", n)
	}
	for range 5 {
		clock.Add(2 * time.Second)
		m.tick()
	}
	if n := src.builds.Load(); n != 1 {
		t.Errorf("5 ticks without a change built the state %d times in all; want 1", n)
	}
	// A rollback on the source (weight 0, new generation) is seen at the next refresh.
	if _, _, err := src.Rollback("support-bot", "canary"); err != nil {
		t.Fatal(err)
	}
	src.gen.Add(1)
	clock.Add(2 * time.Second)
	m.tick()
	if n := src.builds.Load(); n != 2 {
		t.Errorf("a tick after a change built the state %d times in all; want 2", n)
	}
	if lr, ok := m.det.liveRoute("support-bot"); !ok || !slices.Equal(lr.cohorts, []string{"stable"}) {
		t.Errorf("live cohorts after the rollback = %v (%v); want [stable]", lr.cohorts, ok)
	}

	plain := newFakeLive(twoCohortState(true))
	counted := &countingLive{fakeLive: plain}
	m2, err := NewManager(Options{Detection: testDetection(30*time.Second, 10), DataDir: t.TempDir(), State: counted, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Add(2 * time.Second)
		m2.tick()
	}
	if n := counted.builds.Load(); n != 4 {
		t.Errorf("a source without generations was read %d times over start and 3 ticks; want 4", n)
	}
}

// countingLive counts states built, without generations.
type countingLive struct {
	*fakeLive
	builds atomic.Int64
}

func (c *countingLive) State() configs.State {
	c.builds.Add(1)
	return c.fakeLive.State()
}
