package incidents

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// Issue 16.4 on a record signal: error_rate {investigate: 0.1, page: 0.5}.
// A canary failing a quarter of its requests opens an investigate incident
// that is not rolled back; when it fails them all the incident is raised
// to page (timeline event, webhook payload), and only then rolled back.
// Issue 16.3: the incident's cost holds failed and total USD.
func TestSeverityRaiseOnRecordSignal(t *testing.T) {
	dir := t.TempDir()
	live := newFakeLive(twoCohortState(true))
	det := testDetection(2*time.Second, 10)
	det.ErrorRate = configs.Threshold{Investigate: 0.1, Page: 0.5}
	det.ContractFailureRate = configs.Threshold{Page: 1}
	m, err := NewManager(Options{Detection: det, DataDir: dir, State: live, Rollback: live, Tick: 20 * time.Millisecond, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	defer closeManager(t, m)
	g := &recs{}
	price := func(r *capture.Record) *capture.Record {
		c := 0.001
		r.CostUSD = &c
		return r
	}
	for i := range 80 {
		c := "stable"
		if i%2 == 0 {
			c = "canary"
		}
		m.Observe(price(g.make("support-bot", c, capture.OutcomeOK)))
	}
	// A quarter of the canary's requests fail: 0.25 is past investigate
	// (0.1), below page (0.5).
	for i := 0; i < 40 && len(m.List()) == 0; i++ {
		out := capture.OutcomeOK
		if i%4 == 0 {
			out = capture.OutcomeUpstreamError
		}
		m.Observe(price(g.make("support-bot", "canary", out)))
		m.Observe(price(g.make("support-bot", "stable", capture.OutcomeOK)))
		time.Sleep(2 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "an incident", func() bool { return len(m.List()) == 1 })
	inc, _ := m.Get(m.List()[0].ID)
	if inc.Severity != configs.SeverityInvestigate || inc.Trigger.Severity != configs.SeverityInvestigate || inc.Trigger.Signal != SignalErrorRate {
		t.Fatalf("incident %s at %q; want error_rate at investigate", inc.Trigger.Signal, inc.Severity)
	}
	time.Sleep(100 * time.Millisecond)
	if len(live.rollbacks()) != 0 {
		t.Fatalf("an investigate incident was rolled back")
	}
	if !strings.Contains(RenderPostmortem(inc), "automatic rollback acts on page only") {
		t.Errorf("postmortem does not say why nothing was rolled back")
	}
	// Now every canary request fails.
	for i := 0; i < 200 && len(live.rollbacks()) == 0; i++ {
		m.Observe(price(g.make("support-bot", "canary", capture.OutcomeUpstreamError)))
		m.Observe(price(g.make("support-bot", "stable", capture.OutcomeOK)))
		time.Sleep(2 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "the rollback", func() bool { return len(live.rollbacks()) == 1 })
	waitFor(t, 5*time.Second, "the raise", func() bool {
		inc, _ = m.Get(inc.ID)
		return inc.Severity == configs.SeverityPage && inc.Status == StatusMitigated
	})
	if len(m.List()) != 1 {
		t.Errorf("%d incidents; want the one raised", len(m.List()))
	}
	raised := false
	for _, e := range inc.Timeline {
		raised = raised || e.Kind == EventSeverityRaised
	}
	if !raised {
		t.Errorf("no %s event in the timeline", EventSeverityRaised)
	}
	if err := inc.Verify(); err != nil {
		t.Errorf("frozen hash: %v", err)
	}
	if s := inc.Summary(); s.Severity != configs.SeverityPage {
		t.Errorf("summary (the webhook payload) severity = %q", s.Severity)
	}
	waitFor(t, 5*time.Second, "the cost in USD", func() bool {
		inc, _ = m.Get(inc.ID)
		return inc.Cost.FailedCostUSD != nil && inc.Cost.TotalCostUSD != nil && *inc.Cost.FailedCostUSD > 0
	})
	if f, tot := *inc.Cost.FailedCostUSD, *inc.Cost.TotalCostUSD; f > tot || f < 0.001*float64(inc.Cost.FailedRequests)-1e-9 {
		t.Errorf("cost: failed $%v of $%v over %d failed requests", f, tot, inc.Cost.FailedRequests)
	}
	pm := RenderPostmortem(inc)
	for _, want := range []string{"**Severity**: page (detected at investigate, raised ", "spent on failed requests, of $"} {
		if !strings.Contains(pm, want) {
			t.Errorf("postmortem lacks %q", want)
		}
	}
}

// Issue 16.2: cost_per_success_ratio compares the cohorts' cost_usd per
// successful request; a canary whose cost per success climbs crosses
// investigate (1.3) first, then page (1.5), and only then is rolled back.
// Unpriced requests count for nothing.
func TestCostPerSuccessRatio(t *testing.T) {
	dir := t.TempDir()
	live := newFakeLive(twoCohortState(true))
	det := testDetection(2*time.Second, 10)
	det.TokensPerSuccessRatio = configs.Threshold{Page: 100} // tokens stay equal; only money moves
	m, err := NewManager(Options{Detection: det, DataDir: dir, State: live, Rollback: live, Tick: 20 * time.Millisecond, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	defer closeManager(t, m)
	g := &recs{}
	rec := func(cohort string, usd float64) *capture.Record {
		r := g.make("support-bot", cohort, capture.OutcomeOK)
		if usd > 0 {
			r.CostUSD = &usd
		}
		return r
	}
	for range 40 {
		m.Observe(rec("stable", 0.001))
		m.Observe(rec("canary", 0.001))
		m.Observe(rec("canary", 0)) // unpriced: ignored
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(m.List()); n != 0 {
		t.Fatalf("equal costs opened %d incidents", n)
	}
	for i := 0; i < 200 && len(m.List()) == 0; i++ {
		m.Observe(rec("stable", 0.001))
		m.Observe(rec("canary", 0.004))
		time.Sleep(time.Millisecond)
	}
	waitFor(t, 5*time.Second, "a cost incident", func() bool { return len(m.List()) == 1 })
	inc, _ := m.Get(m.List()[0].ID)
	if inc.Trigger.Signal != SignalCostPerSuccess || inc.Trigger.Cohort != "canary" || inc.Trigger.Severity != configs.SeverityInvestigate ||
		inc.Trigger.Unit != "usd" || inc.Trigger.BaselineN < 10 || inc.Trigger.Ratio != 1.3 {
		t.Fatalf("incident = %+v; want cost_per_success_ratio on canary at investigate (ratio 1.3)", inc.Trigger)
	}
	for i := 0; i < 400 && len(live.rollbacks()) == 0; i++ {
		m.Observe(rec("stable", 0.001))
		m.Observe(rec("canary", 0.004))
		time.Sleep(time.Millisecond)
	}
	waitFor(t, 5*time.Second, "the rollback", func() bool { return len(live.rollbacks()) == 1 })
	waitFor(t, 5*time.Second, "the raise to page", func() bool {
		inc, _ = m.Get(inc.ID)
		return inc.Severity == configs.SeverityPage
	})
	if len(m.List()) != 1 {
		t.Errorf("%d incidents; want one", len(m.List()))
	}
	if !strings.Contains(inc.Symptom, "cost $") {
		t.Errorf("symptom = %q", inc.Symptom)
	}
}
