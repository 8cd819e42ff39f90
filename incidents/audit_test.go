package incidents

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

func TestAuditAppendListReopen(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenAudit(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	changes := []configs.Change{{Path: "routes[support-bot].prompt.version", From: "v17", To: "v18"}}
	e1, err := a.Append(AuditEntry{At: t0, Source: SourceReload, Revision: "r1", Changes: changes})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e1.ID, "aud_") || !e1.At.Equal(t0) {
		t.Errorf("Append filled ID %q At %v", e1.ID, e1.At)
	}
	e2, _ := a.Append(AuditEntry{At: t0.Add(time.Minute), Source: SourceRollbackManual, Route: "support-bot", Revision: "r1"})
	if e2.Changes == nil {
		t.Errorf("Changes is nil; want [] so the JSON says so")
	}
	tests := []struct {
		since time.Time
		want  []string
	}{
		{time.Time{}, []string{e1.ID, e2.ID}},
		{t0, []string{e1.ID, e2.ID}},
		{t0.Add(time.Second), []string{e2.ID}},
		{t0.Add(time.Hour), nil},
	}
	for _, tt := range tests {
		if got := ids(a.List(tt.since)); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("List(%v) = %q; want %q", tt.since, got, tt.want)
		}
	}
	a.Close()
	if _, err := a.Append(AuditEntry{Source: SourceReload}); err == nil {
		t.Errorf("Append after Close succeeded")
	}

	// A crash mid-write leaves a torn line: it is skipped, and the next
	// entry starts on a line of its own.
	f, _ := os.OpenFile(filepath.Join(dir, auditFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"aud_torn","at":`)
	f.Close()
	a, err = OpenAudit(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	e3, _ := a.Append(AuditEntry{At: t0.Add(2 * time.Minute), Source: SourceSIGHUP, Revision: "r2"})
	got := a.List(time.Time{})
	if strings.Join(ids(got), ",") != strings.Join([]string{e1.ID, e2.ID, e3.ID}, ",") {
		t.Errorf("after reopen List = %q", ids(got))
	}
	if got[0].Changes[0].To != "v18" {
		t.Errorf("changes did not survive: %+v", got[0].Changes)
	}
	news, seq := a.after(2)
	if len(news) != 1 || news[0].ID != e3.ID || seq != 3 {
		t.Errorf("after(2) = %q, %d; want [%s], 3", ids(news), seq, e3.ID)
	}
}

func ids(es []AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestNewIDSortsByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	a, b := newID("inc", t0), newID("inc", t0.Add(time.Millisecond))
	if !(a < b) || !validID("inc", a) || !validID("inc", b) || a == newID("inc", t0) {
		t.Errorf("newID: %q, %q", a, b)
	}
	for _, bad := range []string{"", "inc_", "inc_../../etc/passwd", "aud_" + a[4:], strings.ToUpper(a)} {
		if validID("inc", bad) {
			t.Errorf("validID(%q) = true", bad)
		}
	}
}

func TestLoadDirSkipsTempsAndNamesBadFiles(t *testing.T) {
	dir := t.TempDir()
	live := newFakeLive(twoCohortState(false))
	m, err := NewManager(Options{DataDir: dir, State: live})
	if err != nil {
		t.Fatal(err)
	}
	inc, err := m.Declare("support-bot", "x")
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)
	idir := filepath.Join(dir, incidentsDir)
	tmp := filepath.Join(idir, "."+inc.ID+".123.tmp")
	bad := filepath.Join(idir, "inc_01m86zhkn0tddk2sc6zyeqvhh1.json")
	os.WriteFile(tmp, []byte("{"), 0o640)
	os.WriteFile(bad, []byte("{"), 0o640)
	got, err := LoadDir(dir)
	if len(got) != 1 || got[0].ID != inc.ID {
		t.Errorf("LoadDir = %d incidents; want only %s", len(got), inc.ID)
	}
	if err == nil || !strings.Contains(err.Error(), "inc_01m86zhkn0tddk2sc6zyeqvhh1") {
		t.Errorf("LoadDir error = %v; want one naming the bad file", err)
	}
	m, err = NewManager(Options{DataDir: dir, State: live})
	if err != nil {
		t.Fatalf("NewManager with a bad file: %v", err)
	}
	defer closeManager(t, m)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("stale temp file survived NewManager: %v", err)
	}
	if l := m.List(); len(l) != 1 || l[0].Status != StatusOpen {
		t.Errorf("List = %+v; want the open declared incident", l)
	}
}
