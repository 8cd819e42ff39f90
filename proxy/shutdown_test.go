package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/loadtest"
)

// cutStreamEnd is how a client's stream ended: its last data line, and
// the scanner's error (nil only when the chunked body ended whole).
type cutStreamEnd struct {
	last string
	err  error
}

// startLongStreams starts a gateway with drain_timeout 300ms in front of a
// mock streaming 400 chunks 100 ms apart, opens n streams through it and
// returns once each has received its first data event; each stream's end
// arrives on the channel.
func startLongStreams(t *testing.T, n int) (*testGateway, <-chan cutStreamEnd) {
	t.Helper()
	_, up := startMock(t, loadtest.MockOptions{ChunkInterval: 100 * time.Millisecond, Chunks: 400})
	tg := startGateway(t, fmt.Sprintf(`
data_dir: {{DATA}}
server: { drain_timeout: 300ms }
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 5s }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: upstream-model } ]
`, up), nil)
	ends := make(chan cutStreamEnd, n)
	var started sync.WaitGroup
	started.Add(n)
	for range n {
		go func() {
			resp, err := http.Post(tg.api+"/v1/chat/completions", "application/json",
				strings.NewReader(chat("support-bot", `"stream":true`)))
			if err != nil {
				started.Done()
				ends <- cutStreamEnd{err: err}
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			first, last := true, ""
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					if first {
						started.Done()
						first = false
					}
					last = sc.Text()
				}
			}
			// sc.Err is nil only if the chunked body ended with its
			// terminator: a connection closed mid-body is an unexpected EOF.
			ends <- cutStreamEnd{last: last, err: sc.Err()}
		}()
	}
	started.Wait()
	return tg, ends
}

// Streams that outlive drain_timeout end with a terminal
// server_shutting_down SSE error event and a record with outcome
// shutdown, written before capture closes; Shutdown returns nil.
func TestShutdownCutsStreamsAtDrainDeadline(t *testing.T) {
	const n = 4
	tg, ends := startLongStreams(t, n)
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tg.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v; want nil (every stream accounted for)", err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("Shutdown took %v with drain_timeout 300ms", d)
	}
	for range n {
		e := <-ends
		if !strings.Contains(e.last, `"code":"server_shutting_down"`) {
			t.Errorf("stream's last event = %q (err %v); want a server_shutting_down error event", e.last, e.err)
		}
	}
	recs := tg.records(t, n)
	shut := 0
	for _, r := range recs {
		if r.Outcome == capture.OutcomeShutdown {
			shut++
		}
	}
	if shut != n {
		t.Errorf("%d records with outcome shutdown; want %d", shut, n)
	}
	a := tg.capture.Health().Accounting
	if begun := tg.recordsBegun.Load(); begun != int64(a.Admitted) || tg.recordsOpen.Load() != 0 {
		t.Errorf("requests begun %d, open %d, admitted to capture %d; want every begun request admitted", begun, tg.recordsOpen.Load(), a.Admitted)
	}
	if !a.Balanced() || a.Sinks["file"].Written != uint64(n) || a.Sinks["file"].LostTotal() != 0 {
		t.Errorf("accounting after shutdown = %+v; want %d written, 0 lost", a, n)
	}
}
