package incidents

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// fullDisk mounts a small tmpfs (root only; the test is skipped with the
// reason otherwise) and returns it with a function that fills it and one
// that frees it.
func fullDisk(t *testing.T, size int) (dir string, fill, free func()) {
	t.Helper()
	dir = t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	filler := filepath.Join(dir, "filler")
	fill = func() {
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
		f.Close()
	}
	free = func() { os.Remove(filler) }
	return dir, fill, free
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// On a full disk an audit entry is kept (List shows it), no torn line is
// left, and it lands by itself once space returns.
func TestAuditFullDiskRetriedUntilItLands(t *testing.T) {
	dir, fill, free := fullDisk(t, 256<<10)
	a, err := OpenAudit(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Append(AuditEntry{Source: SourceStartup}); err != nil {
		t.Fatal(err)
	}
	fill()
	// The file's last page may still take a few entries; append until the
	// disk refuses, then a few more.
	var ids []string
	pad := string(make([]byte, 500))
	for i := 0; a.Unsaved() < 5; i++ {
		if i > 200 {
			t.Fatalf("the full disk took 200 audit entries")
		}
		e, err := a.Append(AuditEntry{Source: SourceReload, Reason: "reload " + strconv.Itoa(i) + pad,
			Changes: []configs.Change{{Path: "routes[0].prompt.version", From: "v1", To: "v" + strconv.Itoa(i)}}})
		if err != nil {
			t.Fatalf("Append on a full disk = %v; want it held and retried", err)
		}
		ids = append(ids, e.ID)
	}
	if got := len(a.List(time.Time{})); got != len(ids)+1 {
		t.Errorf("List has %d entries; want %d (held entries included)", got, len(ids)+1)
	}
	checkAuditFile(t, dir, len(ids)+1-a.Unsaved()) // and no torn line
	free()
	eventually(t, "held audit entries to land", func() bool { return a.Unsaved() == 0 })
	got := checkAuditFile(t, dir, len(ids)+1)
	for i, id := range ids {
		if got[i+1] != id {
			t.Fatalf("audit.jsonl entry %d = %s; want %s (in order)", i+1, got[i+1], id)
		}
	}
}

// checkAuditFile fails on a torn line and on a count other than want; it
// returns the IDs in file order.
func checkAuditFile(t *testing.T, dir string, want int) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit.jsonl has a torn line: %q", sc.Text())
		}
		ids = append(ids, e.ID)
	}
	if len(ids) != want {
		t.Errorf("audit.jsonl has %d entries; want %d", len(ids), want)
	}
	return ids
}

// An incident the disk refused is retried every tick: once space returns
// the file matches memory within the retry interval, and the CLI reads the
// same status the API shows.
func TestIncidentFullDiskRetriedEveryTick(t *testing.T) {
	dir, fill, free := fullDisk(t, 256<<10)
	live := newFakeLive(twoCohortState(false))
	m, err := NewManager(Options{Detection: testDetection(2*time.Second, 10), DataDir: dir, State: live, Replica: "r1", Tick: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	defer closeManager(t, m)
	fill()
	inc, err := m.Declare("support-bot", "disk full drill")
	if err != nil {
		t.Fatal(err)
	}
	if n := m.Unsaved(); n != 1 {
		t.Errorf("Unsaved() = %d on a full disk; want 1", n)
	}
	if _, err := LoadIncident(dir, inc.ID); err == nil {
		t.Errorf("incident on disk although the disk is full")
	}
	free()
	eventually(t, "the incident to be persisted", func() bool { return m.Unsaved() == 0 })
	disk, err := LoadIncident(dir, inc.ID)
	if err != nil {
		t.Fatalf("LoadIncident after space returned: %v", err)
	}
	mem, _ := m.Get(inc.ID)
	if disk.Status != mem.Status || disk.Version != mem.Version {
		t.Errorf("disk says %s v%d, memory %s v%d", disk.Status, disk.Version, mem.Status, mem.Version)
	}
}
