package incidents

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// fakeClock is an injected Now that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// twoCohortState is a route with an 80/20 stable/canary split, prompt v18,
// an enforce contract and auto rollback, like the design's example.
func twoCohortState(autoRollback bool) configs.State {
	return configs.State{
		Revision: "rev-2", Release: "2026.11.3", TakenAt: time.Now().UTC(),
		Routes: []configs.RouteState{{
			Name:   "support-bot",
			Prompt: configs.Prompt{Version: "v18", System: "You are a refund assistant."},
			Flags:  map[string]any{"strict_json": true},
			Sticky: "user",
			Targets: []configs.TargetState{
				{Provider: "openai", Model: "gpt-4o-mini", Cohort: "stable", Weight: 80, ConfiguredWeight: 80},
				{Provider: "openai", Model: "gpt-4.1-mini", Cohort: "canary", Weight: 20, ConfiguredWeight: 20},
			},
			Contract:     configs.ContractState{Mode: configs.ModeEnforce, SchemaFile: "schemas/refund.json", SchemaSHA256: "abc"},
			AutoRollback: autoRollback,
		}, {
			Name:    "single",
			Targets: []configs.TargetState{{Provider: "openai", Model: "gpt-4o-mini", Cohort: "stable", Weight: 1, ConfiguredWeight: 1}},
		}},
	}
}

func cloneState(s configs.State) configs.State {
	c := s
	c.Routes = slices.Clone(s.Routes)
	for i := range c.Routes {
		c.Routes[i].Targets = slices.Clone(c.Routes[i].Targets)
		c.Routes[i].Flags = maps.Clone(c.Routes[i].Flags)
		c.Routes[i].RolledBack = slices.Clone(c.Routes[i].RolledBack)
	}
	return c
}

// fakeLive is the live state and rollback of a gateway, the way
// routing.Live holds them: Rollback sets the cohort's weights to 0 and
// remembers when it was called.
type fakeLive struct {
	mu     sync.Mutex
	st     configs.State
	calls  []time.Time
	failed error // returned by Rollback when set
}

func newFakeLive(st configs.State) *fakeLive { return &fakeLive{st: st} }

func (f *fakeLive) State() configs.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := cloneState(f.st)
	s.TakenAt = time.Now().UTC()
	return s
}

func (f *fakeLive) Rollback(route, cohort string) (before, after configs.State, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, time.Now())
	if f.failed != nil {
		return configs.State{}, configs.State{}, f.failed
	}
	before = cloneState(f.st)
	r := f.st.Route(route)
	if r == nil {
		return before, before, fmt.Errorf("no route %q", route)
	}
	for i := range r.Targets {
		if r.Targets[i].Cohort == cohort {
			r.Targets[i].Weight = 0
		}
	}
	r.RolledBack = append(r.RolledBack, cohort)
	return before, cloneState(f.st), nil
}

func (f *fakeLive) rollbacks() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeLive) live(route, cohort string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.st.Route(route).Cohorts(), cohort)
}

// recs builds capture records with unique gateway and provider IDs.
type recs struct {
	n   atomic.Int64
	now func() time.Time
}

func (g *recs) make(route, cohort, outcome string) *capture.Record {
	n := g.n.Add(1)
	now := time.Now()
	if g.now != nil {
		now = g.now()
	}
	r := &capture.Record{
		GatewayRequestID:  fmt.Sprintf("gw-%06d", n),
		ProviderRequestID: fmt.Sprintf("chatcmpl-%06d", n),
		ReceivedAt:        now.UTC(),
		Key:               "checkout",
		Client:            "web",
		Endpoint:          "chat.completions",
		Route:             route,
		Cohort:            cohort,
		Provider:          "openai",
		Model:             "gpt-4o-mini",
		PromptVersion:     "v18",
		Status:            200,
		Outcome:           outcome,
		LatencyMS:         100,
		Usage:             capture.Usage{PromptTokens: 50, CompletionTokens: 50, TotalTokens: 100},
		Contract:          capture.Verdict{Verdict: capture.VerdictPass},
	}
	if cohort == "canary" {
		r.Model = "gpt-4.1-mini"
	}
	r.Attempts = []capture.Attempt{{Provider: r.Provider, Model: r.Model, Cohort: cohort, Status: 200, ProviderRequestID: r.ProviderRequestID, LatencyMS: 100}}
	switch outcome {
	case capture.OutcomeContractFail:
		r.Contract = capture.Verdict{Verdict: capture.VerdictFail, Reasons: []string{"content is not valid JSON"}}
		r.Status = 502
	case capture.OutcomeUpstreamError:
		r.Status = 502
		r.Attempts[0].Status = 500
		r.Error = "upstream returned 500"
	case capture.OutcomeUpstream429:
		r.Status = 429
		r.Attempts[0].Status = 429
	case capture.OutcomeTimeout:
		r.Status = 504
		r.Attempts[0].Status = 0
		r.Attempts[0].Error = "timeout awaiting response headers"
	case capture.OutcomeClientClosed:
		r.Status = 499
	}
	return r
}

func testDetection(window time.Duration, minRequests int) configs.Detection {
	return configs.Detection{
		Window: configs.Duration(window), MinRequests: minRequests,
		ErrorRate: configs.Threshold{Page: 0.2}, ContractFailureRate: configs.Threshold{Page: 0.1},
		LatencyP99Ratio: configs.Threshold{Page: 2}, TokensPerSuccessRatio: configs.Threshold{Page: 1.3},
		Upstream429Rate: configs.Threshold{Page: 0.5}, Lookback: configs.Duration(24 * time.Hour),
	}
}
