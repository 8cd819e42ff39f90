package capture

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// scrapeValues parses the series of a Prometheus text scrape by their
// full name (labels included).
func scrapeValues(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad series line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// The identity holds within every single /metrics scrape, as README
// promises an operator: admitted = queue_depth + pending + written + lost
// per sink, read off one scrape while records flow. (Before, queue_depth
// came from one snapshot and the other families from another, so a scrape
// under load did not balance.)
func TestLedgerBalancesWithinEveryScrape(t *testing.T) {
	w := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Capture: configs.Capture{QueueSize: 64, ReserveBytes: -1,
		FlushInterval: configs.Duration(time.Millisecond)}})
	w.Start()
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for g := range 4 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				w.Enqueue(testRecord(g*1_000_000 + i))
			}
		}()
	}
	bad, scrapes := 0, 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) || scrapes < 200; scrapes++ {
		v := scrapeValues(t, metricsText(w.metrics))
		admitted, queued := v["cairn_capture_admitted_total"], v["cairn_capture_queue_depth"]
		lost := 0.0
		for _, r := range reasonNames {
			lost += v[`cairn_capture_lost_total{sink="file",reason="`+r+`"}`]
		}
		pending, written := v[`cairn_capture_sink_pending{sink="file"}`], v[`cairn_capture_sink_written_total{sink="file"}`]
		if admitted != queued+pending+written+lost {
			if bad++; bad == 1 {
				t.Errorf("scrape %d: admitted %v != queue_depth %v + pending %v + written %v + lost %v", scrapes, admitted, queued, pending, written, lost)
			}
		}
	}
	close(stop)
	senders.Wait()
	closeWriter(t, w)
	if bad > 0 {
		t.Errorf("%d of %d scrapes under load did not balance", bad, scrapes)
	}
}
