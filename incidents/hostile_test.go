package incidents

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// TestIncidentEncodesOddSamples: an incident whose samples carry numbers
// encoding/json refuses (issue 12.2: "temperature": 1e999 read as +Inf)
// still encodes, clones and renders; before, clone panicked with "BUG:
// incident does not encode" and the process exited.
func TestIncidentEncodesOddSamples(t *testing.T) {
	inf := math.Inf(1)
	rec := capture.Record{GatewayRequestID: "req_odd", Route: "r", Params: capture.Params{Temperature: &inf}, LatencyMS: math.NaN()}
	inc := &Incident{ID: "inc_odd", Status: StatusOpen, Samples: Samples{Before: []capture.Record{rec}, During: []capture.Record{rec}}}
	if err := inc.seal(); err != nil {
		t.Fatal(err)
	}
	c := inc.clone()
	if len(c.Samples.During) != 1 || c.Samples.During[0].GatewayRequestID != "req_odd" {
		t.Fatalf("clone lost the sample: %+v", c.Samples)
	}
	if _, err := json.Marshal(inc); err != nil {
		t.Fatalf("encode: %v", err)
	}
	if err := c.Verify(); err != nil {
		t.Fatalf("Verify after clone: %v", err)
	}
}

// TestWebhookRedirectNotFollowed: a webhook endpoint that redirects
// (here to another real server) gets one POST and the redirect target
// none; the delivery fails without retries and names the status. Issue
// 12.6: following redirects bypassed the address checks made on the
// configured URL and carried the configured headers along.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	target := &hookServer{}
	ts := httptest.NewServer(target)
	defer ts.Close()
	var redirects atomic.Int64
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(w, r, ts.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	defer rs.Close()
	live := newFakeLive(twoCohortState(false))
	m, err := NewManager(Options{
		Detection: testDetection(500*time.Millisecond, 10), DataDir: t.TempDir(), State: live,
		Webhooks:       []configs.Webhook{{URL: rs.URL + "/hook", Headers: map[string]string{"X-Token": "s3cret"}}},
		WebhookBackoff: 5 * time.Millisecond, Tick: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	defer closeManager(t, m)
	inc, err := m.Declare("support-bot", "redirect probe")
	if err != nil {
		t.Fatal(err)
	}
	var got *Incident
	waitFor(t, 5*time.Second, "the webhook action", func() bool {
		got, _ = m.Get(inc.ID)
		return countKind(got.Actions, "webhook") == 1
	})
	for _, a := range got.Actions {
		if a.Kind == "webhook" && (a.OK || !strings.Contains(a.Error, "status 307")) {
			t.Errorf("webhook action %+v; want a failure naming status 307", a)
		}
	}
	if n, _, _ := target.snapshot(); n != 0 {
		t.Errorf("the redirect target got %d requests; want 0", n)
	}
	if n := redirects.Load(); n != 1 {
		t.Errorf("the webhook URL got %d requests; want 1 (a redirect is not retried)", n)
	}
}

// TestDetectorSeriesByConfiguredTarget: records of a passthrough target
// carry the client's model name in Model but the configured label in
// Target; the detector keys its target series by the label, so a client
// sending thousands of distinct names grows one series, not thousands
// (issue 12.7: ~28 KB per series).
func TestDetectorSeriesByConfiguredTarget(t *testing.T) {
	h := newDetHarness(t, twoCohortState(false), 10*time.Second, 20)
	h.run(time.Millisecond, feed{"support-bot", "stable", capture.OutcomeOK, 2000, func(r *capture.Record) {
		r.Model = "client-name-" + strconv.Itoa(int(h.clock.Now().UnixNano()))
		r.Target = r.Provider + "/*"
	}})
	rd := h.d.route("support-bot")
	n := 0
	for _, c := range rd.cohorts {
		n += len(c.targets)
		for _, td := range c.targets {
			if td.model != "*" {
				t.Errorf("target series keyed by %q; want the configured label *", td.model)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d target series after 2000 distinct client model names; want 1", n)
	}
}
