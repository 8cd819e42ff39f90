package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// bigRecord is a record whose request body is about size bytes.
func bigRecord(i, size int) *Record {
	r := testRecord(i)
	r.Raw.RequestBody = []byte(`{"messages":[{"role":"user","content":"` + strings.Repeat("a", size) + `"}]}`)
	return r
}

// Issue 15: the queue takes a byte budget (capture.max_queue_bytes). While
// many goroutines enqueue large bodies faster than they are written, the
// bytes held between Enqueue and the sinks never pass the budget; the
// records beyond it are kept without bodies and counted with a reason,
// and the ledger stays balanced.
func TestQueueBytesNeverExceedBudget(t *testing.T) {
	dir := t.TempDir()
	const budget = 1 << 20
	w := newTestWriter(t, WriterOptions{DataDir: dir, Capture: configs.Capture{QueueSize: 4096, MaxQueueBytes: budget}})
	if w.maxQBytes != budget {
		t.Fatalf("max queue bytes = %d; want capture.max_queue_bytes %d", w.maxQBytes, budget)
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := w.qBytes.Load(); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	w.Start()
	const senders, each, size = 8, 60, 100 << 10
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				w.Enqueue(bigRecord(g*each+i, size))
			}
		}()
	}
	wg.Wait()
	closeWriter(t, w)
	close(stop)
	<-sampled
	if p := peak.Load(); p > budget {
		t.Errorf("queued body bytes peaked at %d; budget %d", p, budget)
	}
	dropped := w.metrics.BodiesDropped(BodiesQueueBytes)
	if dropped == 0 {
		t.Errorf("no bodies dropped with %d×%d B against a %d B budget; the test did not pass the budget", senders*each, size, budget)
	}
	recs := readRecords(t, dir)
	if len(recs) != senders*each {
		t.Fatalf("records written = %d; want %d (one per request, bodies or not)", len(recs), senders*each)
	}
	without := 0
	for _, r := range recs {
		if !r.BodySampled {
			without++
		}
	}
	if uint64(without) != dropped {
		t.Errorf("records without bodies = %d; bodies dropped counted %d", without, dropped)
	}
	if a := w.metrics.Accounting(); !a.Balanced() || a.Sinks["file"].Written != uint64(senders*each) {
		t.Errorf("accounting = %+v; want balanced, all written", a)
	}
	text := metricsText(w.metrics)
	want := fmt.Sprintf("cairn_capture_bodies_dropped_total{reason=\"queue_bytes\"} %d\n", dropped)
	if !strings.Contains(text, want) || !strings.Contains(text, "cairn_capture_queue_bytes 0\n") {
		t.Errorf("metrics lack %q or a drained queue_bytes gauge:\n%s", want, text)
	}
}

// The pipeline prepares records on several goroutines, yet observers, the
// memory ring and the files see them in Enqueue order, each once, with
// their bodies intact.
func TestPipelineKeepsEnqueueOrder(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Capture: configs.Capture{QueueSize: 4096}})
	var seen []string
	w.Subscribe(func(r *Record) { seen = append(seen, r.GatewayRequestID) })
	w.Start()
	const n = 500
	for i := range n {
		// Sizes vary so that preparers finish out of order.
		w.Enqueue(bigRecord(i, (i%7)*20<<10))
	}
	closeWriter(t, w)
	recs := readRecords(t, dir)
	if len(recs) != n || len(seen) != n {
		t.Fatalf("written %d, observed %d; want %d", len(recs), len(seen), n)
	}
	for i := range n {
		want := fmt.Sprintf("gw-%04d", i)
		if recs[i].GatewayRequestID != want || seen[i] != want {
			t.Fatalf("record %d: file %s, observer %s; want %s", i, recs[i].GatewayRequestID, seen[i], want)
		}
		if wantLen := (i%7)*20<<10 + 2; !recs[i].BodySampled || len(recs[i].Request) < wantLen {
			t.Fatalf("record %d: request body %d bytes, sampled %v; want ≥ %d", i, len(recs[i].Request), recs[i].BodySampled, wantLen)
		}
	}
	if got := w.Recent(1, nil); len(got) != 1 || got[0].GatewayRequestID != fmt.Sprintf("gw-%04d", n-1) {
		t.Errorf("newest in memory = %v; want gw-%04d", got, n-1)
	}
}

// capture.memory_bytes bounds the memory ring in bytes as well as count.
func TestMemoryBytesFromConfig(t *testing.T) {
	w := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Capture: configs.Capture{MemoryBytes: 1 << 20}})
	w.Start()
	for i := range 40 {
		w.Enqueue(bigRecord(i, 100<<10))
	}
	closeWriter(t, w)
	if w.mem.maxBytes != 1<<20 || w.mem.bytes > 1<<20 {
		t.Errorf("memory ring holds %d bytes, bound %d; want ≤ capture.memory_bytes (1 MiB)", w.mem.bytes, w.mem.maxBytes)
	}
	if got := w.Recent(100, nil); len(got) >= 40 || len(got) == 0 {
		t.Errorf("ring kept %d of 40 records of 100 KB within 1 MiB", len(got))
	}
}

// capture.max_total_bytes caps the files on disk: the oldest are deleted
// first, counted, and the open file is never among them.
func TestMaxTotalBytesPrunesOldest(t *testing.T) {
	dir := t.TempDir()
	const fileMax, totalMax = 8 << 10, 32 << 10
	w := newTestWriter(t, WriterOptions{DataDir: dir, Capture: configs.Capture{MaxFileBytes: fileMax, MaxTotalBytes: totalMax, QueueSize: 4096}})
	w.Start()
	const n = 400 // ~1 KB each: ~400 KB written in all
	for i := range n {
		w.Enqueue(bigRecord(i, 700))
	}
	closeWriter(t, w)
	names, err := listFiles(filepath.Join(dir, captureSubdir))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, nm := range names {
		st, err := os.Stat(nm)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if total > totalMax {
		t.Errorf("capture files hold %d bytes in %d files; capture.max_total_bytes is %d", total, len(names), totalMax)
	}
	pruned := w.metrics.FilesPruned(PrunedMaxTotal)
	if pruned == 0 {
		t.Fatalf("no file pruned for max_total_bytes after writing ~%d KB", n)
	}
	recs := readRecords(t, dir)
	if len(recs) == 0 || recs[len(recs)-1].GatewayRequestID != fmt.Sprintf("gw-%04d", n-1) {
		t.Fatalf("newest record kept = %v; want gw-%04d (the oldest go first)", recs, n-1)
	}
	if recs[0].GatewayRequestID == "gw-0000" {
		t.Errorf("the oldest record survived pruning")
	}
	if !strings.Contains(metricsText(w.metrics), fmt.Sprintf("cairn_capture_files_pruned_total{reason=\"max_total_bytes\"} %d\n", pruned)) {
		t.Errorf("metrics lack cairn_capture_files_pruned_total{reason=\"max_total_bytes\"} %d", pruned)
	}
	// Everything written is accounted as written: pruning is policy, not
	// a loss of the ledger.
	if a := w.metrics.Accounting(); !a.Balanced() || a.Sinks["file"].Written != n {
		t.Errorf("accounting = %+v", a)
	}
}
