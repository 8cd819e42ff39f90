package incidents

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// feed is a batch of identical records for one cohort.
type feed struct {
	route, cohort, outcome string
	n                      int
	mut                    func(*capture.Record)
}

// detHarness drives a detector with an injected clock.
type detHarness struct {
	clock *fakeClock
	d     *detector
	g     *recs
	fires []*fire
}

func newDetHarness(t *testing.T, st configs.State, window time.Duration, minRequests int) *detHarness {
	t.Helper()
	c := newFakeClock()
	d := newDetector(newDetConfig(testDetection(window, minRequests)))
	d.setLive(&st)
	return &detHarness{clock: c, d: d, g: &recs{now: c.Now}}
}

// run observes the feeds in order, moving the clock by step per record.
func (h *detHarness) run(step time.Duration, feeds ...feed) {
	for _, f := range feeds {
		for range f.n {
			r := h.g.make(f.route, f.cohort, f.outcome)
			if f.mut != nil {
				f.mut(r)
			}
			h.fires = append(h.fires, h.d.observe(r, h.clock.Now())...)
			h.clock.Add(step)
		}
	}
}

// fired lists the fires that open incidents, not the raises of one from
// investigate to page.
func (h *detHarness) fired() []string {
	var out []string
	for _, f := range h.fires {
		if f.raise {
			continue
		}
		out = append(out, f.signal+"/"+f.cohort)
	}
	return out
}

func TestDetectorThresholds(t *testing.T) {
	const ok, fail5xx, cfail = capture.OutcomeOK, capture.OutcomeUpstreamError, capture.OutcomeContractFail
	with429Attempt := func(r *capture.Record) {
		r.Attempts = append([]capture.Attempt{{Provider: "openai", Model: "gpt-4o-mini", Status: 429}}, r.Attempts...)
	}
	tests := []struct {
		name  string
		feeds []feed
		want  []string
	}{
		{"healthy traffic", []feed{{"support-bot", "stable", ok, 80, nil}, {"support-bot", "canary", ok, 20, nil}, {"single", "stable", ok, 50, nil}}, nil},
		{"error rate on the only cohort fires for the route", []feed{{"single", "stable", ok, 15, nil}, {"single", "stable", fail5xx, 5, nil}}, []string{"error_rate/"}},
		{"fewer than min_requests", []feed{{"single", "stable", fail5xx, 19, nil}}, nil},
		{"min_requests reached", []feed{{"single", "stable", fail5xx, 20, nil}}, []string{"error_rate/"}},
		{"client disconnects are not failures", []feed{{"single", "stable", ok, 20, nil}, {"single", "stable", capture.OutcomeClientClosed, 50, nil}}, nil},
		{"client errors are not counted", []feed{{"single", "stable", ok, 10, nil}, {"single", "stable", capture.OutcomeBadRequest, 50, nil}, {"single", "stable", capture.OutcomeRateLimited, 50, nil}}, nil},
		{"timeouts are failures", []feed{{"single", "stable", ok, 16, nil}, {"single", "stable", capture.OutcomeTimeout, 4, nil}}, []string{"error_rate/"}},
		{"error rate just below threshold", []feed{{"single", "stable", ok, 17, nil}, {"single", "stable", fail5xx, 4, nil}, {"single", "stable", ok, 10, nil}}, nil},
		{"contract failures on the canary fire for the cohort", []feed{{"support-bot", "stable", ok, 40, nil}, {"support-bot", "canary", ok, 18, nil}, {"support-bot", "canary", cfail, 2, nil}}, []string{"contract_failure_rate/canary"}},
		{"contract then error on the same cohort", []feed{{"support-bot", "stable", ok, 40, nil}, {"support-bot", "canary", ok, 10, nil}, {"support-bot", "canary", cfail, 10, nil}}, []string{"contract_failure_rate/canary", "error_rate/canary"}},
		{"upstream 429 outcome", []feed{{"single", "stable", ok, 10, nil}, {"single", "stable", capture.OutcomeUpstream429, 10, nil}}, []string{"upstream_429_rate/"}},
		{"429 attempt rescued by a fallback still counts", []feed{{"single", "stable", ok, 10, nil}, {"single", "stable", ok, 10, with429Attempt}}, []string{"upstream_429_rate/"}},
		{"canary 5xx rescued by the stable fallback counts for the canary", []feed{{"support-bot", "stable", ok, 40, nil}, {"support-bot", "stable", ok, 20, failedOverFromCanary(503, "")}}, []string{"error_rate/canary"}},
		{"canary contract failure replaced by the fallback (enforce)", []feed{{"support-bot", "stable", ok, 40, nil}, {"support-bot", "stable", ok, 20, failedOverFromCanary(200, capture.VerdictFail)}}, []string{"contract_failure_rate/canary"}},
		{"failing stable cohort", []feed{{"support-bot", "canary", ok, 20, nil}, {"support-bot", "stable", fail5xx, 20, nil}}, []string{"error_rate/stable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newDetHarness(t, twoCohortState(true), 30*time.Second, 20)
			h.run(10*time.Millisecond, tt.feeds...)
			if got := h.fired(); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("fired %q; want %q", got, tt.want)
			}
		})
	}
}

func TestDetectorRelatedSignalJoinsTheFirst(t *testing.T) {
	h := newDetHarness(t, twoCohortState(true), 30*time.Second, 20)
	h.run(10*time.Millisecond,
		feed{"support-bot", "stable", capture.OutcomeOK, 40, nil},
		feed{"support-bot", "canary", capture.OutcomeOK, 10, nil},
		feed{"support-bot", "canary", capture.OutcomeContractFail, 10, nil})
	if len(h.fires) != 2 {
		t.Fatalf("fired %q; want 2 fires", h.fired())
	}
	first, second := h.fires[0], h.fires[1]
	if first.related != "" || first.wave {
		t.Errorf("first fire related=%q wave=%v; want a new incident", first.related, first.wave)
	}
	if second.related != first.key {
		t.Errorf("second fire related = %q; want %q", second.related, first.key)
	}
	if first.target != "openai/gpt-4.1-mini" {
		t.Errorf("target = %q; want openai/gpt-4.1-mini", first.target)
	}
	if first.o.n != 20 || first.o.bad != 10 {
		t.Errorf("requests/bad = %d/%d; want 20/10", first.o.n, first.o.bad)
	}
	if len(first.during) != 5 || first.during[0].Contract.Verdict != capture.VerdictFail {
		t.Errorf("during samples = %d; want 5 failing", len(first.during))
	}
	if len(first.before) == 0 {
		t.Errorf("no before samples")
	}
	for _, r := range first.before {
		if !r.ReceivedAt.Before(first.firstFailure) || r.Outcome != capture.OutcomeOK {
			t.Errorf("before sample %s at %v is not a success before the first failure %v", r.GatewayRequestID, r.ReceivedAt, first.firstFailure)
		}
	}
	if !first.firstFailure.Equal(first.during[0].ReceivedAt) {
		t.Errorf("first failure = %v; want the first failing record's %v", first.firstFailure, first.during[0].ReceivedAt)
	}
	if first.seed.scope.Failed != 10 || first.seed.scope.Requests != 60 || first.seed.scope.ByTarget["openai/gpt-4.1-mini"] != 10 {
		t.Errorf("seed scope = %+v; want 10 failed of 60 on openai/gpt-4.1-mini", first.seed.scope)
	}
	if first.seed.cost.FailedTokens != 1000 {
		t.Errorf("seed failed tokens = %d; want 1000", first.seed.cost.FailedTokens)
	}
}

func TestDetectorLatencyBaseline(t *testing.T) {
	slow := func(ms float64) func(*capture.Record) { return func(r *capture.Record) { r.LatencyMS = ms } }
	const ok = capture.OutcomeOK
	t.Run("against the other cohort", func(t *testing.T) {
		h := newDetHarness(t, twoCohortState(true), 30*time.Second, 20)
		h.run(10*time.Millisecond, feed{"support-bot", "stable", ok, 40, slow(100)}, feed{"support-bot", "canary", ok, 20, slow(450)})
		if got := h.fired(); strings.Join(got, ",") != "latency_p99/canary" {
			t.Fatalf("fired %q; want latency_p99/canary", got)
		}
		f := h.fires[0]
		if f.o.baseSrc != "cohort stable, same window" {
			t.Errorf("baseline source = %q; want cohort stable", f.o.baseSrc)
		}
		if f.o.baseline < 100 || f.o.baseline > 120 || f.o.observed < 450 || f.o.observed > 540 {
			t.Errorf("p99 %v vs baseline %v; want ≈450 vs ≈100", f.o.observed, f.o.baseline)
		}
	})
	t.Run("not twice the other cohort", func(t *testing.T) {
		h := newDetHarness(t, twoCohortState(true), 30*time.Second, 20)
		h.run(10*time.Millisecond, feed{"support-bot", "stable", ok, 40, slow(100)}, feed{"support-bot", "canary", ok, 20, slow(180)})
		if got := h.fired(); len(got) != 0 {
			t.Errorf("fired %q; want nothing", got)
		}
	})
	t.Run("against the route's earlier windows", func(t *testing.T) {
		h := newDetHarness(t, twoCohortState(true), 3*time.Second, 20)
		h.run(100*time.Millisecond, feed{"single", "stable", ok, 60, slow(100)})
		if len(h.fires) != 0 {
			t.Fatalf("fired %q during the baseline", h.fired())
		}
		h.run(100*time.Millisecond, feed{"single", "stable", ok, 30, slow(500)})
		if got := h.fired(); strings.Join(got, ",") != "latency_p99/" {
			t.Fatalf("fired %q; want latency_p99/", got)
		}
		if src := h.fires[0].o.baseSrc; src != "earlier windows" {
			t.Errorf("baseline source = %q; want earlier windows", src)
		}
	})
	t.Run("no baseline yet", func(t *testing.T) {
		h := newDetHarness(t, twoCohortState(true), 30*time.Second, 20)
		h.run(10*time.Millisecond, feed{"single", "stable", ok, 50, slow(5000)})
		if len(h.fires) != 0 {
			t.Errorf("fired %q without a baseline", h.fired())
		}
	})
	t.Run("tiny absolute change on a fast route", func(t *testing.T) {
		h := newDetHarness(t, twoCohortState(true), 30*time.Second, 20)
		h.run(10*time.Millisecond, feed{"support-bot", "stable", ok, 40, slow(2)}, feed{"support-bot", "canary", ok, 20, slow(8)})
		if len(h.fires) != 0 {
			t.Errorf("fired %q for 2 ms → 8 ms", h.fired())
		}
	})
}

func TestDetectorTokensBaseline(t *testing.T) {
	tokens := func(n int) func(*capture.Record) {
		return func(r *capture.Record) {
			r.Usage = capture.Usage{PromptTokens: n / 2, CompletionTokens: n - n/2, TotalTokens: n}
		}
	}
	const ok = capture.OutcomeOK
	tests := []struct {
		name           string
		stable, canary int
		want           string
	}{
		{"twice the tokens", 100, 200, "tokens_per_success/canary"},
		{"ten percent more", 100, 110, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newDetHarness(t, twoCohortState(true), 30*time.Second, 20)
			h.run(10*time.Millisecond, feed{"support-bot", "stable", ok, 40, tokens(tt.stable)}, feed{"support-bot", "canary", ok, 20, tokens(tt.canary)})
			if got := strings.Join(h.fired(), ","); got != tt.want {
				t.Errorf("fired %q; want %q", got, tt.want)
			}
		})
	}
}

func TestDetectorWavesAndWindowExpiry(t *testing.T) {
	const ok, fail = capture.OutcomeOK, capture.OutcomeUpstreamError
	h := newDetHarness(t, twoCohortState(true), 2*time.Second, 10)
	h.run(20*time.Millisecond, feed{"single", "stable", fail, 10, nil})
	if len(h.fires) != 1 || h.fires[0].wave {
		t.Fatalf("fired %q; want one new incident", h.fired())
	}
	// Still failing: the edge already fired.
	h.run(20*time.Millisecond, feed{"single", "stable", fail, 20, nil})
	if len(h.fires) != 1 {
		t.Fatalf("fired %q while still crossing; want no repeat", h.fired())
	}
	// The failures leave the window; healthy traffic brings it below.
	h.clock.Add(3 * time.Second)
	h.run(20*time.Millisecond, feed{"single", "stable", ok, 10, nil})
	if o, _ := h.d.check("single", "", sigError, h.clock.Now()); o.n != 10 || o.bad != 0 {
		t.Errorf("window after expiry holds %d requests, %d failed; want 10, 0", o.n, o.bad)
	}
	// A repeat while the incident is tracked is a wave.
	h.run(20*time.Millisecond, feed{"single", "stable", fail, 10, nil})
	if len(h.fires) != 2 || !h.fires[1].wave {
		t.Fatalf("fired %q; want a second fire marked as a wave", h.fired())
	}
	// Once the incident is over, a repeat is a new incident.
	h.d.dropTracker(h.fires[0].key)
	h.d.resetFiring("single", sigError)
	h.run(20*time.Millisecond, feed{"single", "stable", fail, 1, nil})
	if len(h.fires) != 3 || h.fires[2].wave {
		t.Fatalf("fired %q; want a third fire as a new incident", h.fired())
	}
}

func TestDetectorRolledBackCohortIsIgnored(t *testing.T) {
	const ok, fail = capture.OutcomeOK, capture.OutcomeContractFail
	st := twoCohortState(true)
	h := newDetHarness(t, st, 30*time.Second, 20)
	h.run(10*time.Millisecond, feed{"support-bot", "stable", ok, 40, nil})
	for i := range st.Routes[0].Targets {
		if st.Routes[0].Targets[i].Cohort == "canary" {
			st.Routes[0].Targets[i].Weight = 0
		}
	}
	h.d.setLive(&st)
	// In-flight canary requests finishing after the rollback neither fire
	// for the cohort nor count against the route's remaining traffic.
	h.run(10*time.Millisecond, feed{"support-bot", "canary", fail, 30, nil}, feed{"support-bot", "stable", ok, 10, nil})
	if len(h.fires) != 0 {
		t.Errorf("fired %q after the rollback", h.fired())
	}
	if o, live := h.d.check("support-bot", "", sigContract, h.clock.Now()); !live || o.n != 50 || o.bad != 0 {
		t.Errorf("route check = %d requests, %d bad, live %v; want 50, 0, true", o.n, o.bad, live)
	}
	if _, live := h.d.check("support-bot", "canary", sigContract, h.clock.Now()); live {
		t.Errorf("canary still live after rollback")
	}
}

func TestLatencyHistogram(t *testing.T) {
	tests := []struct {
		ms   float64
		want float64 // upper bound of its bucket
	}{{0, 1}, {1, 1}, {1.1, 1.1892}, {100, 107.6347}, {1000, 1024}, {1e9, latUpper(latOverflow)}}
	for _, tt := range tests {
		if got := latUpper(latIndex(tt.ms)); math.Abs(got-tt.want) > 0.001 {
			t.Errorf("latUpper(latIndex(%v)) = %v; want %v", tt.ms, got, tt.want)
		}
	}
	var a agg
	for i := range 100 {
		c := class{lat: latIndex(float64(10 + i))}
		a.addRec(&c)
	}
	if p := a.p99(); p < 108 || p > 130 {
		t.Errorf("p99 of 10..109 ms = %v; want ≈109", p)
	}
}

func TestSeriesSlides(t *testing.T) {
	s := newSeries(3, 1, false)
	add := func(idx int64, n int) {
		s.advance(idx)
		for range n {
			s.add(nil, &class{}, nil)
		}
	}
	add(0, 1)
	add(1, 2)
	add(2, 4)
	if s.cur.n != 7 || s.base.n != 0 {
		t.Fatalf("cur/base = %d/%d; want 7/0", s.cur.n, s.base.n)
	}
	add(3, 8) // bucket 0 moves to the baseline
	if s.cur.n != 14 || s.base.n != 1 {
		t.Errorf("cur/base = %d/%d; want 14/1", s.cur.n, s.base.n)
	}
	add(6, 0) // buckets 1..3 move to the baseline; 0 leaves it
	if s.cur.n != 0 || s.base.n != 14 {
		t.Errorf("cur/base = %d/%d; want 0/14", s.cur.n, s.base.n)
	}
	add(100, 1) // a long gap resets everything
	if s.cur.n != 1 || s.base.n != 0 {
		t.Errorf("cur/base = %d/%d; want 1/0", s.cur.n, s.base.n)
	}
}

// failedOverFromCanary makes a record served by the stable fallback after
// the canary's attempt failed with status (or broke the contract).
func failedOverFromCanary(status int, contract string) func(*capture.Record) {
	return func(r *capture.Record) {
		r.Attempts = []capture.Attempt{
			{Provider: "openai", Model: "gpt-4.1-mini", Cohort: "canary", Status: status, Contract: contract},
			{Provider: "openai", Model: "gpt-4o-mini", Cohort: "stable", Status: 200},
		}
	}
}
