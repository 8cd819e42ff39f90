package incidents

import (
	"log/slog"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
)

// The scenario: an incident on disk as open, the disk fills, the
// incident is rolled back and resolves in memory. The refused write is held and retried every
// tick, so once space returns the file says resolved, as the API does,
// within the retry interval (before: the file stayed "open" for good while
// GET /admin/incidents said "resolved"). Meanwhile Get, the detail behind
// GET /admin/incidents/{id}, shows the held version: once resolved the
// incident leaves the active set, and Get used to fall back to the older
// file and answer "open" while List said "resolved".
func TestIncidentResolvedOnFullDiskLandsWhenSpaceReturns(t *testing.T) {
	dir, fill, free := fullDisk(t, 256<<10)
	live := newFakeLive(twoCohortState(false))
	const tick = 20 * time.Millisecond
	m, err := NewManager(Options{Detection: testDetection(300*time.Millisecond, 10), DataDir: dir, State: live, Replica: "r1", Tick: tick,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	defer closeManager(t, m)
	inc, err := m.Declare("support-bot", "disk full drill")
	if err != nil {
		t.Fatal(err)
	}
	if disk, err := LoadIncident(dir, inc.ID); err != nil || disk.Status != StatusOpen || m.Unsaved() != 0 {
		t.Fatalf("declared on a free disk: %v, unsaved %d; want it on disk, open", err, m.Unsaved())
	}
	fill()
	// Rolled back by hand, then a healthy window: resolved in memory.
	before, after, err := live.Rollback("support-bot", "canary")
	if err != nil {
		t.Fatal(err)
	}
	m.RecordRollback("support-bot", "canary", "admin", before, after)
	g := &recs{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := m.Get(inc.ID)
		if err == nil && got.Status == StatusResolved {
			break
		}
		if time.Now().After(deadline) {
			var events []string
			for _, e := range got.Timeline {
				events = append(events, e.Kind+": "+e.Message)
			}
			t.Fatalf("incident %s on a full disk never resolved in memory: status %s, timeline %q", inc.ID, got.Status, events)
		}
		m.Observe(g.make("support-bot", "stable", capture.OutcomeOK))
		time.Sleep(5 * time.Millisecond)
	}
	if n := m.Unsaved(); n != 1 {
		t.Errorf("Unsaved() = %d after resolving on a full disk; want 1", n)
	}
	if l := m.List(); len(l) != 1 || l[0].Status != StatusResolved {
		t.Errorf("List() on a full disk = %+v; want the incident resolved, as Get says", l)
	}
	if disk, err := LoadIncident(dir, inc.ID); err != nil || disk.Status != StatusOpen {
		t.Errorf("on a full disk the file = %v, %v; want the old open version, whole", disk, err)
	}
	free()
	t0 := time.Now()
	eventually(t, "the resolved incident to land", func() bool { return m.Unsaved() == 0 })
	if d := time.Since(t0); d > 50*tick {
		t.Errorf("the held incident landed %v after space returned; want within a few ticks (%v)", d, tick)
	}
	disk, err := LoadIncident(dir, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	mem, _ := m.Get(inc.ID)
	if disk.Status != StatusResolved || disk.Status != mem.Status || disk.Version != mem.Version || len(disk.Timeline) != len(mem.Timeline) {
		t.Errorf("disk says %s v%d (%d events), memory %s v%d (%d events); want equal, resolved",
			disk.Status, disk.Version, len(disk.Timeline), mem.Status, mem.Version, len(mem.Timeline))
	}
	// The CLI's view (every incident in the directory) agrees.
	all, err := LoadDir(dir)
	if err != nil || len(all) != 1 || all[0].Status != StatusResolved {
		t.Errorf("LoadDir after space returned = %d incidents, %v", len(all), err)
	}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
