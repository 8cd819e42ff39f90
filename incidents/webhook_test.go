package incidents

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// hookServer records webhook payloads; it answers 503 to the first fail
// attempts, and always status when status is not 0.
type hookServer struct {
	mu       sync.Mutex
	attempts int
	fail     int
	status   int
	events   []string
	headers  []string
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	h.headers = append(h.headers, r.Header.Get("X-Token"))
	if h.status != 0 {
		w.WriteHeader(h.status)
		return
	}
	if h.attempts <= h.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var p WebhookPayload
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &p); err != nil || p.Incident.ID == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.events = append(h.events, p.Event+":"+p.Incident.Status)
}

func (h *hookServer) snapshot() (int, []string, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts, slices.Clone(h.events), slices.Clone(h.headers)
}

func TestWebhooksRetriedAndRecorded(t *testing.T) {
	good := &hookServer{fail: 2}
	bad := &hookServer{status: http.StatusNotFound}
	gs, bs := httptest.NewServer(good), httptest.NewServer(bad)
	defer gs.Close()
	defer bs.Close()
	live := newFakeLive(twoCohortState(false))
	m, err := NewManager(Options{
		Detection: testDetection(500*time.Millisecond, 10), DataDir: t.TempDir(), State: live,
		Webhooks: []configs.Webhook{
			{URL: gs.URL + "/hook?token=SECRET-IN-URL", Headers: map[string]string{"X-Token": "s3cret"}},
			{URL: bs.URL + "/gone"},
		},
		WebhookBackoff: 5 * time.Millisecond, Tick: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	defer closeManager(t, m)
	inc, err := m.Declare("support-bot", "wrong refunds")
	if err != nil {
		t.Fatal(err)
	}
	before, after, _ := live.Rollback("support-bot", "canary")
	m.RecordRollback("support-bot", "canary", SourceRollbackManual, before, after)

	want := []string{"opened:open", "mitigated:mitigated", "resolved:resolved"}
	waitFor(t, 5*time.Second, "three webhook events", func() bool {
		_, ev, _ := good.snapshot()
		return len(ev) == 3
	})
	attempts, events, headers := good.snapshot()
	if !slices.Equal(events, want) {
		t.Errorf("events = %q; want %q", events, want)
	}
	if attempts != 5 {
		t.Errorf("%d attempts; want 5 (2 retried failures + 3 deliveries)", attempts)
	}
	if headers[0] != "s3cret" {
		t.Errorf("X-Token header = %q; want the configured one", headers[0])
	}
	var got *Incident
	waitFor(t, 2*time.Second, "webhook actions", func() bool {
		got, _ = m.Get(inc.ID)
		return countKind(got.Actions, "webhook") == 6
	})
	if n, _, _ := bad.snapshot(); n != 3 {
		t.Errorf("a 404 webhook got %d attempts; want 3 (one per event, no retries)", n)
	}
	var okN int
	for _, a := range got.Actions {
		if a.Kind != "webhook" {
			continue
		}
		if strings.Contains(a.Message+a.Error, "SECRET-IN-URL") {
			t.Errorf("action leaks the webhook URL: %+v", a)
		}
		if a.OK {
			okN++
		} else if a.Error != "status 404" {
			t.Errorf("failed webhook action error = %q; want status 404", a.Error)
		}
	}
	if okN != 3 {
		t.Errorf("%d successful webhook actions; want 3", okN)
	}
	if !slices.ContainsFunc(got.Actions, func(a Action) bool {
		return strings.Contains(a.Message, "notified: opened (3 attempt(s))")
	}) {
		t.Errorf("actions %+v do not record the 3 attempts of the first delivery", got.Actions)
	}
}

func countKind(as []Action, kind string) int {
	n := 0
	for _, a := range as {
		if a.Kind == kind {
			n++
		}
	}
	return n
}

func TestWebhookQueueNeverBlocks(t *testing.T) {
	n := newNotifier([]configs.Webhook{{URL: "http://127.0.0.1:1/x"}}, time.Millisecond, slog.New(slog.DiscardHandler), nil)
	inc := &Incident{ID: "inc_x", Status: StatusOpen}
	done := make(chan struct{})
	go func() {
		// Nothing consumes the queue: enqueue must drop, not wait.
		for range webhookQueue + 10 {
			n.enqueue(EventOpened, inc, "r1", time.Now())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("enqueue blocked on a full queue")
	}
	if got := n.dropped.Load(); got != 10 {
		t.Errorf("dropped = %d; want 10", got)
	}
}
