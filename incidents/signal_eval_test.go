package incidents

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// scoreOf is a score of a request on route support-bot.
func scoreOf(id, cohort string, v float64, now time.Time) capture.Score {
	return capture.Score{Type: capture.RecordTypeScore, RequestID: id, Name: "faithfulness", Value: v,
		At: now, Received: now, RequestAt: now, Route: "support-bot", Cohort: cohort,
		Target:        "openai/" + map[string]string{"stable": "gpt-4o-mini", "canary": "gpt-4.1-mini"}[cohort],
		PromptVersion: "v18", Release: "2026.11.3"}
}

// Issue 16.2 and 16.4: eval_drift opens one investigate incident on the
// cohort whose mean score drops 3 points (between investigate 2 and page
// 5), without rolling it back; when it drops further it is raised to page
// with a timeline event, and only then rolled back. The stable cohort,
// whose scores vary ±3 points, opens nothing.
func TestEvalDriftSeverities(t *testing.T) {
	dir := t.TempDir()
	live := newFakeLive(twoCohortState(true))
	det := testDetection(2*time.Second, 10)
	det.Eval = configs.Eval{Window: configs.Duration(10 * time.Second), MinScores: 30, DropPoints: configs.Threshold{Investigate: 2, Page: 5}}
	recsByID := map[string]*capture.Record{}
	m, err := NewManager(Options{
		Detection: det, DataDir: dir, State: live, Rollback: live, Tick: 20 * time.Millisecond, Replica: "r1",
		Lookup: func(id string) *capture.Record { return recsByID[id] },
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	defer closeManager(t, m)
	rng := rand.New(rand.NewPCG(1, 2))
	g := &recs{}
	n := 0
	send := func(stableMean, canaryMean float64, rounds int) {
		for range rounds {
			var batch []capture.Score
			for _, c := range []string{"stable", "canary"} {
				mean := stableMean
				if c == "canary" {
					mean = canaryMean
				}
				r := g.make("support-bot", c, capture.OutcomeOK)
				recsByID[r.GatewayRequestID] = r
				m.Observe(r)
				n++
				// ±3 points of noise around the mean.
				batch = append(batch, scoreOf(r.GatewayRequestID, c, mean+(rng.Float64()*6-3)/100, time.Now()))
			}
			m.ObserveScores(batch)
		}
	}
	send(0.80, 0.80, 40)
	time.Sleep(100 * time.Millisecond)
	if got := m.List(); len(got) != 0 {
		t.Fatalf("healthy scores with ±3 points of noise opened %d incidents: %+v", len(got), got)
	}
	// The canary's mean falls 3.5 points: investigate.
	send(0.80, 0.765, 60)
	waitFor(t, 5*time.Second, "an eval_drift incident", func() bool { return len(m.List()) == 1 })
	inc, _ := m.Get(m.List()[0].ID)
	if inc.Trigger.Signal != SignalEvalDrift || inc.Trigger.Cohort != "canary" || inc.Severity != configs.SeverityInvestigate {
		t.Fatalf("incident = %s on %q at %q; want eval_drift on canary at investigate", inc.Trigger.Signal, inc.Trigger.Cohort, inc.Severity)
	}
	if len(live.rollbacks()) != 0 {
		t.Fatalf("an investigate incident rolled the canary back")
	}
	if inc.Trigger.BaselineN < 30 || inc.Trigger.Requests < 30 || inc.Trigger.BaselineSource != "cohort stable, same window" {
		t.Errorf("trigger n = %d, baseline n = %d from %q; want ≥ 30 scores on both sides from the stable cohort", inc.Trigger.Requests, inc.Trigger.BaselineN, inc.Trigger.BaselineSource)
	}
	if len(inc.Samples.Scores) != samplesPerPhase || len(inc.Samples.During) != samplesPerPhase {
		t.Errorf("samples: %d scores, %d during records; want %d of each (the lowest-scored requests)", len(inc.Samples.Scores), len(inc.Samples.During), samplesPerPhase)
	}
	for i, s := range inc.Samples.Scores {
		if i > 0 && s.Value < inc.Samples.Scores[i-1].Value {
			t.Errorf("sample scores not lowest first: %+v", inc.Samples.Scores)
		}
		if s.Value > inc.Trigger.Observed {
			t.Errorf("sample score %v above the cohort mean %v: not among the lowest", s.Value, inc.Trigger.Observed)
		}
	}
	if g := inc.Trigger.EvalGate; g == nil || g.Name != "faithfulness" || g.MinScores != 30 || g.Investigate != 2 || g.Page != 5 || g.DropPoints < 2 {
		t.Errorf("eval gate = %+v", g)
	}
	pm := RenderPostmortem(inc)
	for _, want := range []string{"investigate", "eval gate", "faithfulness"} {
		if !strings.Contains(pm, want) {
			t.Errorf("postmortem lacks %q", want)
		}
	}
	// It falls to 7 points below: raised to page, and rolled back.
	send(0.80, 0.70, 150)
	waitFor(t, 5*time.Second, "the raise to page", func() bool {
		inc, _ = m.Get(inc.ID)
		return inc.Severity == configs.SeverityPage
	})
	waitFor(t, 5*time.Second, "the rollback", func() bool { return len(live.rollbacks()) == 1 })
	inc, _ = m.Get(inc.ID)
	raised := false
	for _, e := range inc.Timeline {
		raised = raised || e.Kind == EventSeverityRaised
	}
	if !raised || len(m.List()) != 1 || inc.Trigger.Severity != configs.SeverityInvestigate {
		t.Errorf("raised event %v, %d incidents, trigger severity %q; want one incident raised with its detection kept at investigate", raised, len(m.List()), inc.Trigger.Severity)
	}
	if err := inc.Verify(); err != nil {
		t.Errorf("frozen hash broken by the raise: %v", err)
	}
	_ = fmt.Sprint
}

// Issue 16.2: too few scores on either side never fire; a late score
// feeds nothing.
func TestEvalDriftNeedsMinScores(t *testing.T) {
	c := newEvalConfig(configs.Eval{Window: configs.Duration(time.Minute), MinScores: 30, DropPoints: configs.Threshold{Investigate: 2, Page: 5}}, time.Hour)
	e := newEvalDet(c)
	now := time.Now()
	live := func(string) []string { return []string{"stable", "canary"} }
	var batch []capture.Score
	for i := range 29 {
		batch = append(batch, scoreOf(fmt.Sprint("s", i), "stable", 0.9, now), scoreOf(fmt.Sprint("c", i), "canary", 0.1, now))
	}
	if x := e.observeScores(batch, now, live); len(x) != 0 {
		t.Fatalf("29 scores a side fired: %+v", x)
	}
	late := scoreOf("late", "canary", 0, now)
	late.Late = true
	old := scoreOf("old", "canary", 0, now)
	old.RequestAt = now.Add(-2 * time.Hour)
	if x := e.observeScores([]capture.Score{late, old}, now, live); len(x) != 0 {
		t.Fatalf("late scores fired: %+v", x)
	}
	x := e.observeScores([]capture.Score{scoreOf("s29", "stable", 0.9, now), scoreOf("c29", "canary", 0.1, now)}, now, live)
	if len(x) != 1 || x[0].cohort != "canary" || x[0].severity != configs.SeverityPage || x[0].o.n != 30 {
		t.Fatalf("the 30th score a side = %+v; want one page crossing on canary with n 30", x)
	}
}

// Issue 16.2: with no other cohort to compare with, the baseline is the
// same cohort's scores before the change now live (the previous prompt
// version or release), within the lookback.
func TestEvalDriftBaselineBeforeChange(t *testing.T) {
	c := newEvalConfig(configs.Eval{Window: configs.Duration(time.Minute), MinScores: 30, DropPoints: configs.Threshold{Investigate: 2, Page: 5}}, time.Hour)
	e := newEvalDet(c)
	now := time.Now()
	live := func(string) []string { return []string{"stable"} }
	var batch []capture.Score
	for i := range 40 {
		s := scoreOf(fmt.Sprint("old", i), "stable", 0.85, now)
		s.PromptVersion = "v17"
		batch = append(batch, s)
	}
	if x := e.observeScores(batch, now, live); len(x) != 0 {
		t.Fatalf("the first version fired: %+v", x)
	}
	// The prompt changes to v18 later (past the window), and answers get worse.
	later := now.Add(2 * time.Minute)
	batch = batch[:0]
	for i := range 30 {
		batch = append(batch, scoreOf(fmt.Sprint("new", i), "stable", 0.80, later))
	}
	x := e.observeScores(batch, later, live)
	if len(x) != 1 {
		t.Fatalf("crossings = %+v; want one", x)
	}
	o := x[0].o
	if x[0].cohort != "" || o.baseKind != baseBefore || o.baseN != 40 || math.Abs(o.baseline-0.85) > 1e-9 || x[0].severity != configs.SeverityPage ||
		!strings.Contains(o.baseSource(), "prompt v17") {
		t.Errorf("crossing = cohort %q, baseline %v from %q (n %d), severity %s; want the route, 0.85 before the change to v18 (n 40), page",
			x[0].cohort, o.baseline, o.baseSource(), o.baseN, x[0].severity)
	}
	if g := x[0].gate; g.ScoredBefore != 40 || !strings.Contains(g.Version, "prompt v18") {
		t.Errorf("gate = %+v; want 40 scored before the change, v18 live", g)
	}
}
