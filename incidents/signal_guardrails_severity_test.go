package incidents

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// The guardrail signals are rows of the signal table with both
// severities: each fires at the level it reached and is raised from
// investigate to page when it crosses the page level later.
func TestGuardrailSeverityRaise(t *testing.T) {
	const ok = capture.OutcomeOK
	tests := []struct {
		name    string
		set     func(d *configs.Detection)
		feeds   []feed
		first   configs.Severity
		raised  bool
		wantSig string
	}{
		{"refusal shift of 6 points, then 12", nil, []feed{
			{"support-bot", "stable", ok, 100, nil},
			{"support-bot", "canary", ok, 94, nil}, {"support-bot", "canary", ok, 6, refusing}, // 6%: investigate (5)
			{"support-bot", "canary", ok, 7, refusing}, // 13 of 107, 12.1%: page (10)
		}, configs.SeverityInvestigate, true, SignalRefusalRate},
		{"refusal shift of 6 points only", nil, []feed{
			{"support-bot", "stable", ok, 100, nil},
			{"support-bot", "canary", ok, 94, nil}, {"support-bot", "canary", ok, 6, refusing},
		}, configs.SeverityInvestigate, false, SignalRefusalRate},
		{"refusal shift of 12 points at once", func(d *configs.Detection) {
			d.RefusalRatePoints = configs.Threshold{Page: 10} // a bare number: page only
		}, []feed{
			{"support-bot", "stable", ok, 100, nil},
			{"support-bot", "canary", ok, 88, nil}, {"support-bot", "canary", ok, 12, refusing},
		}, configs.SeverityPage, false, SignalRefusalRate},
		{"leak rate past investigate, then past page", func(d *configs.Detection) {
			d.PIILeakRate = configs.Threshold{Investigate: 0.05, Page: 0.2}
		}, []feed{
			{"support-bot", "stable", ok, 60, nil},
			{"support-bot", "canary", ok, 60, nil}, {"support-bot", "canary", ok, 4, leaking}, // 6.25%
			{"support-bot", "canary", ok, 12, leaking}, // 16 of 76, 21%
		}, configs.SeverityInvestigate, true, SignalPIILeakRate},
		{"any sustained leak pages by default", nil, []feed{
			{"support-bot", "stable", ok, 60, nil},
			{"support-bot", "canary", ok, 60, nil}, {"support-bot", "canary", ok, 2, leaking},
		}, configs.SeverityPage, false, SignalPIILeakRate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDetection(30*time.Second, 20)
			if tt.set != nil {
				tt.set(&d)
			}
			det := newDetector(newDetConfig(d))
			st := twoCohortState(true)
			det.setLive(&st)
			h := &detHarness{clock: newFakeClock(), d: det}
			h.g = &recs{now: h.clock.Now}
			h.run(10*time.Millisecond, tt.feeds...)
			want := 1
			if tt.raised {
				want = 2
			}
			if len(h.fires) != want {
				t.Fatalf("%d fires %q; want %d", len(h.fires), h.fired(), want)
			}
			f := h.fires[0]
			if f.signal != tt.wantSig || f.cohort != "canary" || f.raise || f.severity != tt.first {
				t.Errorf("first fire %s/%s at %q (raise %v); want %s/canary at %q", f.signal, f.cohort, f.severity, f.raise, tt.wantSig, tt.first)
			}
			if wantClass := incidentClass(f.sig); f.class != wantClass {
				t.Errorf("fire class %q; want %q", f.class, wantClass)
			}
			if tt.raised {
				r := h.fires[1]
				if !r.raise || r.severity != configs.SeverityPage || r.signal != tt.wantSig || r.cohort != "canary" {
					t.Errorf("second fire %s/%s at %q (raise %v); want the raise of %s/canary to page", r.signal, r.cohort, r.severity, r.raise, tt.wantSig)
				}
			}
		})
	}
}

// Through the manager: a refusal shift of 6 points opens an investigate
// incident that is not rolled back; at 12 points the same incident is
// raised to page (timeline event, summary) and only then rolled back.
func TestRefusalRaisedToPageRollsBack(t *testing.T) {
	live := newFakeLive(twoCohortState(true))
	det := testDetection(30*time.Second, 20)
	m, err := NewManager(Options{Detection: det, DataDir: t.TempDir(), State: live, Rollback: live, Tick: 20 * time.Millisecond, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	defer closeManager(t, m)
	g := &recs{}
	observe := func(cohort string, n int, refuse bool) {
		for range n {
			r := g.make("support-bot", cohort, capture.OutcomeOK)
			r.Refusal = refuse
			m.Observe(r)
		}
	}
	observe("stable", 100, false)
	observe("canary", 94, false)
	observe("canary", 6, true) // 6 points above stable's 0%
	waitFor(t, 5*time.Second, "an incident", func() bool { return len(m.List()) == 1 })
	inc, _ := m.Get(m.List()[0].ID)
	if inc.Trigger.Signal != SignalRefusalRate || inc.Severity != configs.SeverityInvestigate || inc.Trigger.Severity != configs.SeverityInvestigate {
		t.Fatalf("incident %s at %q; want refusal_rate at investigate", inc.Trigger.Signal, inc.Severity)
	}
	// The rollback is decided before the incident is opened (prepare),
	// so once it is listed, none means none was made at investigate.
	if n := len(live.rollbacks()); n != 0 {
		t.Fatalf("%d rollbacks of an investigate incident", n)
	}
	observe("canary", 7, true) // 13 of 107: 12 points
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
		if e.Kind == EventSeverityRaised {
			raised = true
			if !strings.Contains(e.Message, "points from its baseline") || !strings.Contains(e.Message, "(page severity)") {
				t.Errorf("raise event says %q; want the shift in points and the page severity", e.Message)
			}
		}
	}
	if !raised {
		t.Errorf("no %s event in the timeline", EventSeverityRaised)
	}
	if s := inc.Summary(); s.Severity != configs.SeverityPage || s.Class != "" {
		t.Errorf("summary severity %q class %q; want page and no class", s.Severity, s.Class)
	}
}
