package incidents

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

func chartIncident(length time.Duration, changeBefore time.Duration) *Incident {
	ff := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	det, mit, res := ff.Add(time.Second), ff.Add(2*time.Second), ff.Add(length)
	return &Incident{
		ID: "inc_01m8ychart0000000000000000", Status: StatusResolved, FirstFailureAt: ff, DetectedAt: det, MitigatedAt: &mit, ResolvedAt: &res,
		Trigger: Trigger{Signal: SignalContractFailureRate, Route: "r", Cohort: "canary", Threshold: 0.1, Unit: "fraction", Window: configs.Duration(10 * time.Second)},
		State: configs.State{Routes: []configs.RouteState{{Name: "r", Targets: []configs.TargetState{
			{Provider: "p", Model: "a", Cohort: "stable", Weight: 80}, {Provider: "p", Model: "b", Cohort: "canary", Weight: 20}}}}},
		Changes: []AuditEntry{{At: ff.Add(-changeBefore), Source: SourceReload}},
		Actions: []Action{{At: mit, Kind: "rollback", OK: true}},
	}
}

// TestChartBuckets: the bucket width follows the incident's length, from
// 1 s to 1 min, and the range reaches back to the change in the lookback.
func TestChartBuckets(t *testing.T) {
	tests := []struct {
		name           string
		length, change time.Duration
		bucket         time.Duration
	}{
		{"short", 20 * time.Second, 5 * time.Second, time.Second},
		{"ten minutes", 10 * time.Minute, time.Minute, 5 * time.Second},
		{"change a day before", 10 * time.Minute, 23 * time.Hour, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc := chartIncident(tt.length, tt.change)
			c := NewChart(inc, inc.ResolvedAt.Add(time.Hour))
			p := c.Period()
			if c.Bucket() != tt.bucket {
				t.Errorf("bucket = %v; want %v", c.Bucket(), tt.bucket)
			}
			if p.From.After(inc.Changes[0].At) || !p.To.After(*inc.ResolvedAt) {
				t.Errorf("period %v–%v does not span the change %v to the resolution %v", p.From, p.To, inc.Changes[0].At, *inc.ResolvedAt)
			}
			if n := c.nBuckets(); n > 2*chartBuckets && tt.bucket < time.Minute || n > 1600 {
				t.Errorf("%d buckets", n)
			}
		})
	}
}

// TestChartValues: a cohort's value per bucket is its bad share, buckets
// without traffic are gaps, and the markers name every kind of event.
func TestChartValues(t *testing.T) {
	inc := chartIncident(20*time.Second, 5*time.Second)
	c := NewChart(inc, inc.ResolvedAt.Add(time.Hour))
	ff := inc.FirstFailureAt
	add := func(cohort string, at time.Time, fail bool) {
		r := &capture.Record{Route: "r", Cohort: cohort, ReceivedAt: at, Outcome: capture.OutcomeOK, Status: 200, Contract: capture.Verdict{Verdict: capture.VerdictPass}}
		if fail {
			r.Outcome, r.Contract.Verdict = capture.OutcomeContractFail, capture.VerdictFail
		}
		c.Add(r)
	}
	add("canary", ff, true)
	add("canary", ff.Add(100*time.Millisecond), false)
	add("stable", ff, false)
	add("canary", ff.Add(time.Hour*48), true)                                                          // out of range: ignored
	c.Add(&capture.Record{Route: "other", Cohort: "canary", ReceivedAt: ff, Outcome: "contract_fail"}) // other route
	out := c.Render()
	if len(out.Series) != 2 {
		t.Fatalf("%d series; want 2", len(out.Series))
	}
	b := int(ff.Sub(c.from) / c.bucket)
	canary := out.Series[1]
	if !strings.Contains(canary.Name, "canary") || canary.Points[b].V != 50 {
		t.Errorf("canary bucket at the first failure = %v (%s); want 50", canary.Points[b].V, canary.Name)
	}
	if v := canary.Points[0].V; !math.IsNaN(v) {
		t.Errorf("an empty bucket = %v; want a gap (NaN)", v)
	}
	if c.Records() != 3 {
		t.Errorf("records = %d; want 3", c.Records())
	}
	kinds := map[string]bool{}
	for _, m := range out.Markers {
		kinds[m.Kind] = true
	}
	for _, k := range []string{"change", "first_failure", "detection", "rollback", "resolved"} {
		if !kinds[k] {
			t.Errorf("no %s marker", k)
		}
	}
	if len(out.Rules) != 1 || out.Rules[0].V != 10 {
		t.Errorf("threshold rules = %+v; want one at 10%%", out.Rules)
	}
	var buf bytes.Buffer
	if err := c.WriteSVG(&buf); err != nil || !strings.Contains(buf.String(), "threshold 10%") {
		t.Errorf("WriteSVG: %v", err)
	}
}
