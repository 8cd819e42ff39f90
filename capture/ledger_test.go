package capture

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// The identity admitted = queued + pending + written + lost holds at every
// snapshot while records are enqueued, dropped on a full queue, written
// and closed concurrently, and after Close every record is written or
// counted lost with a reason.
func TestLedgerBalancesAtEveryMoment(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Capture: configs.Capture{QueueSize: 16, ReserveBytes: -1,
		FlushInterval: configs.Duration(5 * time.Millisecond)}})
	w.Start()
	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Add(1)
	go func() {
		defer scrapes.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if a := w.metrics.Accounting(); !a.Balanced() {
				t.Errorf("unbalanced snapshot: %+v", a)
				return
			}
		}
	}()
	var senders sync.WaitGroup
	const per, n = 500, 8
	for g := range n {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := range per {
				w.Enqueue(testRecord(g*per + i))
			}
		}()
	}
	senders.Wait()
	closeWriter(t, w)
	for i := range 10 {
		w.Enqueue(testRecord(100000 + i)) // after Close: lost, reason closed
	}
	close(stop)
	scrapes.Wait()
	a := w.metrics.Accounting()
	f := a.Sinks["file"]
	if a.Admitted != n*per+10 || a.Queued != 0 || f.Pending != 0 || f.Lost["closed"] != 10 || f.Written+f.LostTotal() != a.Admitted {
		t.Errorf("after Close: %+v; want %d admitted = written + lost, 10 closed", a, n*per+10)
	}
	if got := uint64(len(readRecords(t, dir))); got != f.Written {
		t.Errorf("files hold %d records; written counter %d", got, f.Written)
	}
	if f.Lost["queue_full"] == 0 {
		t.Logf("no queue_full losses with a 16-record queue (fast machine)")
	}
	m := metricsText(w.metrics)
	for _, want := range []string{"cairn_capture_admitted_total 4010\n", `cairn_capture_lost_total{sink="file",reason="closed"} 10`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
