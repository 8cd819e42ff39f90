package incidents

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

func refusing(r *capture.Record) { r.Refusal = true }
func leaking(r *capture.Record)  { r.PIILeak = []string{"email"} }

func TestGuardrailSignals(t *testing.T) {
	const ok = capture.OutcomeOK
	tests := []struct {
		name  string
		feeds []feed
		want  []string
		step  time.Duration // between records; default 10ms
	}{
		{"healthy traffic with a steady refusal rate", []feed{
			{"support-bot", "stable", ok, 36, nil}, {"support-bot", "stable", ok, 4, refusing},
			{"support-bot", "canary", ok, 18, nil}, {"support-bot", "canary", ok, 2, refusing}}, nil, 0},
		{"canary refuses 30 points more than stable", []feed{
			{"support-bot", "stable", ok, 40, nil},
			{"support-bot", "canary", ok, 14, nil}, {"support-bot", "canary", ok, 6, refusing}}, []string{"refusal_rate/canary"}, 0},
		{"canary stopped refusing what stable refuses", []feed{
			{"support-bot", "stable", ok, 20, nil}, {"support-bot", "stable", ok, 20, refusing},
			{"support-bot", "canary", ok, 20, nil}}, []string{"refusal_rate/canary"}, 0},
		{"shift below the investigate level", []feed{
			{"support-bot", "stable", ok, 40, nil},
			{"support-bot", "canary", ok, 39, nil}, {"support-bot", "canary", ok, 1, refusing}}, nil, 0},
		{"refusals on the only cohort against its earlier windows", []feed{
			{"single", "stable", ok, 60, nil}, {"single", "stable", ok, 20, refusing}}, []string{"refusal_rate/"}, time.Second},
		{"refusals without a baseline", []feed{{"single", "stable", ok, 20, refusing}}, nil, 0},
		{"sustained leaks on the canary", []feed{
			{"support-bot", "stable", ok, 40, nil},
			{"support-bot", "canary", ok, 18, nil}, {"support-bot", "canary", ok, 2, leaking}}, []string{"pii_leak_rate/canary"}, 0},
		{"one leak is no pattern", []feed{
			{"support-bot", "stable", ok, 40, nil},
			{"support-bot", "canary", ok, 19, nil}, {"support-bot", "canary", ok, 1, leaking}}, nil, 0},
		{"leaks below min_requests", []feed{{"single", "stable", ok, 5, leaking}}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newDetHarness(t, twoCohortState(true), 30*time.Second, 20)
			step := tt.step
			if step == 0 {
				step = 10 * time.Millisecond
			}
			h.run(step, tt.feeds...)
			if got := h.fired(); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("fired %q; want %q", got, tt.want)
			}
		})
	}
}

func TestGuardrailThresholds(t *testing.T) {
	d := testDetection(30*time.Second, 20)
	d.RefusalRatePoints = configs.Threshold{Page: 40}
	d.PIILeakRate = configs.Threshold{Page: 0.35}
	det := newDetector(newDetConfig(d))
	st := twoCohortState(true)
	det.setLive(&st)
	h := &detHarness{clock: newFakeClock(), d: det}
	h.g = &recs{now: h.clock.Now}
	h.run(10*time.Millisecond,
		feed{"support-bot", "stable", capture.OutcomeOK, 40, nil},
		feed{"support-bot", "canary", capture.OutcomeOK, 14, nil},
		feed{"support-bot", "canary", capture.OutcomeOK, 6, func(r *capture.Record) { refusing(r); leaking(r) }})
	if len(h.fires) != 0 {
		t.Fatalf("fired %q under 40 points and a 35%% leak rate; want nothing", h.fired())
	}
	d.RefusalRatePoints, d.PIILeakRate = configs.Threshold{Page: -1}, configs.Threshold{Page: -1}
	if c := newDetConfig(d); c.enabled(sigRefusal) || c.enabled(sigPII) {
		t.Error("a negative page does not disable the guardrail signals")
	}
}

// TestPIILeakIncidentIsSecurity: the manager opens one pii_leak_rate
// incident of class security on the leaking canary, rolls it back, and its
// symptom, postmortem and webhook summary carry the class and the signal.
func TestPIILeakIncidentIsSecurity(t *testing.T) {
	dir := t.TempDir()
	live := newFakeLive(twoCohortState(true))
	ring := &memRing{}
	m, err := NewManager(Options{
		Detection: testDetection(2*time.Second, 10), DataDir: dir, State: live, Rollback: live,
		Recent: ring.Recent, Tick: 20 * time.Millisecond, Replica: "r1",
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	defer closeManager(t, m)
	g := &recs{}
	for i := range 60 {
		cohort := "stable"
		if i%3 == 0 {
			cohort = "canary"
		}
		r := g.make("support-bot", cohort, capture.OutcomeOK)
		if cohort == "canary" && i >= 30 {
			leaking(r)
		}
		ring.add(r)
		m.Observe(r)
	}
	waitFor(t, 2*time.Second, "the incident", func() bool { return len(m.List()) == 1 })
	waitFor(t, 2*time.Second, "the rollback", func() bool { return len(live.rollbacks()) > 0 })
	s := m.List()[0]
	inc, err := m.Get(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if inc.Trigger.Signal != SignalPIILeakRate || inc.Class != ClassSecurity || inc.Trigger.Cohort != "canary" || s.Class != ClassSecurity {
		t.Errorf("signal %q class %q (summary %q) cohort %q; want pii_leak_rate, security, canary", inc.Trigger.Signal, inc.Class, s.Class, inc.Trigger.Cohort)
	}
	if !strings.Contains(inc.Symptom, "leaked personal data") {
		t.Errorf("symptom %q", inc.Symptom)
	}
	pm := RenderPostmortem(inc)
	if !strings.Contains(pm, "**Class**: security") || !strings.Contains(pm, "PII leak rate") {
		t.Errorf("postmortem lacks the class or the signal:\n%s", pm)
	}
	for _, r := range inc.Samples.During {
		if len(r.PIILeak) == 0 {
			t.Errorf("during sample %s did not leak", r.GatewayRequestID)
		}
	}
}
