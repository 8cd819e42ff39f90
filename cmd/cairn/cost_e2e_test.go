package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// costConfig prices both targets alike and puts the tokens signal out of
// reach, so a canary that answers with many more tokens is caught by the
// money it costs per success (issue 16's cost_per_success_ratio).
var costConfig = strings.Replace(guardConfig, "  latency_p99_ratio: 50\n", `  latency_p99_ratio: 50
  tokens_per_success_ratio: 1000
  cost_per_success_ratio: { investigate: 1.3, page: 1.5 }
pricing:
  - { provider: stable, model: gpt-4o-mini, input: 0.15, output: 0.60 }
  - { provider: canary, model: gpt-4.1-mini, input: 0.15, output: 0.60 }
`, 1)

// TestE2ECostPerSuccess: the real binary, the OpenAI SDK and two mock
// processes; healthy traffic opens nothing, then the canary's answers
// report 4,000 completion tokens each: one incident on the canary for
// cost_per_success_ratio, at page, rolled back, with its cost in USD.
func TestE2ECostPerSuccess(t *testing.T) {
	s := startGuardStackConfig(t, costConfig)
	inc := runGuardSignal(t, s, `{"tokens":4000}`, "cost_per_success_ratio")
	var full struct {
		Cost struct {
			TotalCostUSD  *float64 `json:"total_cost_usd"`
			FailedCostUSD *float64 `json:"failed_cost_usd"`
		} `json:"cost"`
	}
	if err := json.Unmarshal(s.get(t, "/admin/incidents/"+inc.ID), &full); err != nil {
		t.Fatal(err)
	}
	if c := full.Cost.TotalCostUSD; c == nil || *c <= 0 {
		t.Errorf("incident total_cost_usd = %v; want the priced requests' cost", c)
	}
	metrics := string(s.get(t, "/metrics"))
	if !strings.Contains(metrics, `cairn_cost_usd_total{route="support-bot",cohort="canary",target="canary/gpt-4.1-mini"}`) {
		t.Errorf("metrics lack the canary's cost counter")
	}
}
