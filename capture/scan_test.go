package capture

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestBetweenInDir reads a route's records in a time range from the
// capture files, across days, without their bodies, skipping other routes,
// records out of range and a torn final line (issue 18: the charts).
func TestBetweenInDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, captureSubdir), 0o750); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 12, 2, 23, 59, 58, 0, time.UTC)
	write := func(day string, recs ...Record) {
		var b []byte
		for _, r := range recs {
			line, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			b = append(append(b, line...), '\n')
		}
		b = append(b, `{"gateway_request_id":"req_torn","route":"support-bot","rec`...) // a crash mid-write
		if err := os.WriteFile(filepath.Join(dir, captureSubdir, fileName(day, 1)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(id, route string, at time.Time) Record {
		c := 0.002
		return Record{GatewayRequestID: id, Route: route, Cohort: "canary", ReceivedAt: at, Outcome: OutcomeContractFail, Status: 200,
			Contract: Verdict{Verdict: VerdictFail, Reasons: []string{"x"}}, CostUSD: &c, Usage: Usage{PromptTokens: 3, CompletionTokens: 4},
			Attempts: []Attempt{{Status: 429}, {Status: 200}}, Request: json.RawMessage(`[{"role":"user","content":"\"route\":\"support-bot\","}]`)}
	}
	write("2026-12-02",
		rec("req_a", "support-bot", base),                   // in range
		rec("req_b", "other-bot", base.Add(time.Second)),    // other route
		rec("req_c", "support-bot", base.Add(-time.Minute))) // before the range
	write("2026-12-03",
		rec("req_d", "support-bot", base.Add(3*time.Second)),  // in range, next day's file
		rec("req_e", "support-bot", base.Add(10*time.Second))) // at To: out
	var got []string
	var first Record
	err := BetweenInDir(context.Background(), dir, Period{Route: "support-bot", From: base, To: base.Add(10 * time.Second)}, func(r *Record) bool {
		if len(got) == 0 {
			first = *r
		}
		got = append(got, r.GatewayRequestID)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"req_a", "req_d"}) {
		t.Errorf("BetweenInDir = %v; want [req_a req_d]", got)
	}
	if first.Request != nil || first.Contract.Verdict != VerdictFail || first.CostUSD == nil || *first.CostUSD != 0.002 ||
		len(first.Attempts) != 2 || first.Attempts[0].Status != 429 || first.Usage.CompletionTokens != 4 || first.Outcome != OutcomeContractFail {
		t.Errorf("record read back = %+v", first)
	}
}
