package capture

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// A crash mid-write leaves a torn final line. Reopening the file seals it
// (counted), new records start on their own line, and readers skip the
// torn one with a count while finding every whole record.
func TestTornFinalLineSealedAndSkipped(t *testing.T) {
	dir := t.TempDir()
	cdir := filepath.Join(dir, captureSubdir)
	os.MkdirAll(cdir, 0o750)
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	whole := string(appendRecord(nil, testRecord(1)))
	torn := string(appendRecord(nil, testRecord(2)))
	torn = torn[:len(torn)/2] // SIGKILL in the middle of the write
	os.WriteFile(filepath.Join(cdir, fileName("2026-11-24", 1)), []byte(whole+torn), 0o640)

	w := newTestWriter(t, WriterOptions{DataDir: dir, Now: func() time.Time { return now }, Capture: configs.Capture{ReserveBytes: -1}})
	w.Start()
	w.Enqueue(testRecord(3))
	closeWriter(t, w)
	if got := w.metrics.TornLines(); got != 1 {
		t.Errorf("torn lines counted on reopen = %d; want 1", got)
	}
	b, _ := os.ReadFile(filepath.Join(cdir, fileName("2026-11-24", 1)))
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || lines[1] != torn {
		t.Fatalf("file has %d lines; want whole, torn (sealed), new", len(lines))
	}
	for _, id := range []string{"gw-0001", "gw-0003"} {
		if r, n, err := FindInDirTorn(dir, id); err != nil || r.GatewayRequestID != id {
			t.Errorf("FindInDirTorn(%s) = %v, %d, %v", id, r, n, err)
		}
	}
	if _, n, err := FindInDirTorn(dir, "gw-0002"); !errors.Is(err, ErrNotFound) || n != 1 {
		t.Errorf("FindInDirTorn(torn record) = %d torn, %v; want 1 torn, ErrNotFound", n, err)
	}
}
