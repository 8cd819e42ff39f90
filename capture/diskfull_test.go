package capture

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// quotaFile is a capture file on a disk with space bytes left: a write
// past it takes what fits and fails with ENOSPC, as a full file system
// does; truncating gives the space back.
type quotaFile struct {
	*os.File
	space *atomic.Int64
}

func (f quotaFile) Write(b []byte) (int, error) {
	left := f.space.Load()
	if int64(len(b)) <= left {
		f.space.Add(-int64(len(b)))
		return f.File.Write(b)
	}
	n, _ := f.File.Write(b[:max(left, 0)])
	f.space.Add(-int64(n))
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

func (f quotaFile) Truncate(size int64) error {
	st, err := f.File.Stat()
	if err != nil {
		return err
	}
	if err := f.File.Truncate(size); err != nil {
		return err
	}
	f.space.Add(st.Size() - size)
	return nil
}

// newQuotaWriter returns a started writer whose capture files live on a
// disk with *space bytes free.
func newQuotaWriter(t *testing.T, c configs.Capture, space *atomic.Int64) (*Writer, string) {
	t.Helper()
	dir := t.TempDir()
	c.ReserveBytes = -1
	if c.FlushInterval == 0 {
		c.FlushInterval = configs.Duration(10 * time.Millisecond)
	}
	w := newTestWriter(t, WriterOptions{DataDir: dir, Capture: c})
	w.files.open = func(path string) (captureFile, error) {
		f, err := openAppend(path)
		if err != nil {
			return nil, err
		}
		return quotaFile{f.(*os.File), space}, nil
	}
	w.Start()
	return w, dir
}

// checkLines reads every capture file line by line and fails on any line
// that is not a whole record; it returns the records' gateway IDs.
func checkLines(t *testing.T, dir string) map[string]int {
	t.Helper()
	names, err := listFiles(filepath.Join(dir, captureSubdir))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for line := 1; sc.Scan(); line++ {
			var r Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("%s line %d is torn: %v", filepath.Base(n), line, err)
				continue
			}
			ids[r.GatewayRequestID]++
		}
		f.Close()
	}
	return ids
}

func checkBalanced(t *testing.T, w *Writer) Accounting {
	t.Helper()
	a := w.metrics.Accounting()
	if !a.Balanced() {
		t.Errorf("accounting does not balance: %+v", a)
	}
	return a
}

// A full disk keeps records in memory and writes them to the same file
// when space returns: nothing lost, no file per failure, no torn line.
func TestDiskFullSpillsAndRecovers(t *testing.T) {
	var space atomic.Int64
	space.Store(1 << 30)
	w, dir := newQuotaWriter(t, configs.Capture{}, &space)
	for i := range 50 {
		w.Enqueue(testRecord(i))
	}
	waitFor(t, func() bool { return w.metrics.Accounting().Sinks["file"].Written == 50 })

	// Leave room for part of one record: the partial write must be cut.
	space.Store(300)
	for i := 50; i < 250; i++ {
		w.Enqueue(testRecord(i))
	}
	waitFor(t, func() bool { return w.metrics.Accounting().Queued == 0 })
	time.Sleep(50 * time.Millisecond) // a few failed retries
	h := w.Health()
	if h.OK || h.FileError == "" {
		t.Errorf("Health() = %+v while the disk is full; want not OK with a file error", h)
	}
	a := checkBalanced(t, w)
	if a.Sinks["file"].Pending == 0 {
		t.Errorf("no records pending while the disk is full: %+v", a)
	}
	if n := w.metrics.sinkErrors[sinkFile].Load(); n == 0 {
		t.Errorf("sink errors = 0 while the disk is full")
	}
	checkLines(t, dir) // no torn line while failing
	if r, err := w.Lookup(context.Background(), "gw-0200"); err != nil || r.GatewayRequestID != "gw-0200" {
		t.Errorf("Lookup of a spilled record = %v, %v; want it from memory", r, err)
	}

	space.Store(1 << 30)
	waitFor(t, func() bool { return w.metrics.Accounting().Sinks["file"].Written == 250 })
	if h := w.Health(); !h.OK {
		t.Errorf("Health() = %+v after space returned; want OK", h)
	}
	closeWriter(t, w)
	a = checkBalanced(t, w)
	if lost := a.Sinks["file"].LostTotal(); lost != 0 {
		t.Errorf("lost %d records; want 0", lost)
	}
	ids := checkLines(t, dir)
	for i := range 250 {
		if id := testRecord(i).GatewayRequestID; ids[id] != 1 {
			t.Errorf("%s is on disk %d times; want once", id, ids[id])
		}
	}
	if names, _ := listFiles(filepath.Join(dir, captureSubdir)); len(names) != 1 {
		t.Errorf("capture files = %v; want the one file retried", names)
	}
}

// Past capture.spill_bytes, records are lost and counted, never silently.
func TestDiskFullSpillBoundCountsLosses(t *testing.T) {
	var space atomic.Int64
	w, dir := newQuotaWriter(t, configs.Capture{SpillBytes: 8 << 10}, &space)
	const n = 200
	for i := range n {
		w.Enqueue(testRecord(i))
	}
	waitFor(t, func() bool { return w.metrics.Accounting().Queued == 0 })
	a := checkBalanced(t, w)
	lost := a.Sinks["file"].Lost["spill_full"]
	if lost == 0 {
		t.Fatalf("spill_full losses = 0 with an 8 KiB spill and no space: %+v", a)
	}
	space.Store(1 << 30)
	waitFor(t, func() bool { return w.metrics.Accounting().Sinks["file"].Pending == 0 })
	closeWriter(t, w)
	a = checkBalanced(t, w)
	got := uint64(len(checkLines(t, dir)))
	if got+a.Sinks["file"].LostTotal() != n || a.Sinks["file"].Written != got {
		t.Errorf("on disk %d + lost %d != %d admitted (written counter %d)", got, a.Sinks["file"].LostTotal(), n, a.Sinks["file"].Written)
	}
	var m = metricsText(w.metrics)
	if want := `cairn_capture_lost_total{sink="file",reason="spill_full"} `; !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// Close retries a failing disk until its deadline and counts what it
// could not write as lost at shutdown.
func TestDiskFullAtCloseCountsShutdownLoss(t *testing.T) {
	var space atomic.Int64
	w, _ := newQuotaWriter(t, configs.Capture{}, &space)
	for i := range 20 {
		w.Enqueue(testRecord(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); err == nil {
		t.Errorf("Close with a full disk = nil; want the deadline error")
	}
	a := checkBalanced(t, w)
	if got := a.Sinks["file"].Lost["shutdown"]; got != 20 {
		t.Errorf("lost at shutdown = %d; want 20 (%+v)", got, a)
	}
}
