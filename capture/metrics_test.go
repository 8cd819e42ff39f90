package capture

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Prometheus text format lines (0.0.4).
var (
	promComment = regexp.MustCompile(`^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$`)
	promSample  = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (\S+)$`)
)

// checkPrometheusText fails on any malformed line and returns the samples
// as "name{labels}" → value.
func checkPrometheusText(t *testing.T, text string) map[string]float64 {
	t.Helper()
	samples := map[string]float64{}
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("metrics text does not end in a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			if !promComment.MatchString(line) {
				t.Errorf("line %d: bad comment %q", i+1, line)
			}
			continue
		}
		m := promSample.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %d: bad sample %q", i+1, line)
			continue
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil && m[4] != "+Inf" {
			t.Errorf("line %d: bad value %q", i+1, m[4])
		}
		key := m[1] + m[2]
		if _, dup := samples[key]; dup {
			t.Errorf("line %d: duplicate series %s", i+1, key)
		}
		samples[key] = v
	}
	return samples
}

func TestMetricsText(t *testing.T) {
	m := NewMetrics()
	temp := 0.2
	r := &Record{Route: "support-bot", Cohort: "canary", Provider: "openai", Model: "gpt-4o-mini", Status: 200, Outcome: OutcomeOK,
		LatencyMS: 300, TTFTMS: 40, Usage: Usage{PromptTokens: 100, CompletionTokens: 20}, Contract: Verdict{Verdict: VerdictPass},
		Params: Params{Temperature: &temp}}
	m.ObserveRecord(r)
	m.ObserveRecord(r)
	bad := &Record{Route: "we\"ird\\route\nx", Status: 502, Outcome: OutcomeUpstreamError, LatencyMS: 400000,
		Contract: Verdict{Verdict: VerdictFail},
		Attempts: []Attempt{{Provider: "openai", Status: 503}, {Provider: "backup", Error: "dial tcp: refused"}, {Provider: "ok", Status: 200}}}
	m.ObserveRecord(bad)
	m.ObserveRecord(&Record{Route: "support-bot", Status: 429, Outcome: OutcomeRateLimited, Key: "checkout"})
	text := metricsText(m)
	s := checkPrometheusText(t, text)
	want := map[string]float64{
		`cairn_requests_total{route="support-bot",cohort="canary",target="openai/gpt-4o-mini",status="200",outcome="ok"}`: 2,
		`cairn_requests_total{route="we\"ird\\route\nx",cohort="",target="",status="502",outcome="upstream_error"}`:       1,
		`cairn_requests_total{route="support-bot",cohort="",target="",status="429",outcome="rate_limited"}`:               1,
		`cairn_request_duration_seconds_bucket{route="support-bot",le="0.25"}`:                                            0,
		`cairn_request_duration_seconds_bucket{route="support-bot",le="0.5"}`:                                             2,
		`cairn_request_duration_seconds_bucket{route="support-bot",le="+Inf"}`:                                            2,
		`cairn_request_duration_seconds_sum{route="support-bot"}`:                                                         0.6,
		`cairn_request_duration_seconds_count{route="support-bot"}`:                                                       2,
		`cairn_request_duration_seconds_bucket{route="we\"ird\\route\nx",le="300"}`:                                       0,
		`cairn_request_duration_seconds_bucket{route="we\"ird\\route\nx",le="+Inf"}`:                                      1,
		`cairn_time_to_first_token_seconds_bucket{route="support-bot",le="0.05"}`:                                         2,
		`cairn_tokens_total{route="support-bot",kind="prompt"}`:                                                           200,
		`cairn_tokens_total{route="support-bot",kind="completion"}`:                                                       40,
		`cairn_contract_total{route="support-bot",cohort="canary",target="openai/gpt-4o-mini",verdict="pass"}`:            2,
		`cairn_contract_total{route="we\"ird\\route\nx",cohort="",target="",verdict="fail"}`:                              1,
		`cairn_upstream_errors_total{provider="openai",status="503"}`:                                                     1,
		`cairn_upstream_errors_total{provider="backup",status="0"}`:                                                       1,
		`cairn_capture_queue_depth`:                     0,
		`cairn_capture_dropped_total`:                   0,
		`cairn_capture_sink_errors_total{sink="redis"}`: 0,
	}
	for k, v := range want {
		got, ok := s[k]
		if !ok {
			t.Errorf("metrics lack %s", k)
			continue
		}
		if got != v {
			t.Errorf("%s = %v; want %v", k, got, v)
		}
	}
	if _, ok := s[`cairn_upstream_errors_total{provider="ok",status="200"}`]; ok {
		t.Errorf("a successful attempt counted as an upstream error")
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

func TestMetricsCardinalityCap(t *testing.T) {
	m := NewMetrics()
	for i := range maxSeries + 50 {
		m.ObserveRecord(&Record{Route: fmt.Sprintf("r%d", i), Status: 200, Outcome: OutcomeOK})
	}
	s := checkPrometheusText(t, metricsText(m))
	n := 0
	for k := range s {
		if strings.HasPrefix(k, "cairn_requests_total{") {
			n++
		}
	}
	if n != maxSeries+1 {
		t.Errorf("requests_total has %d series; want %d (cap + other)", n, maxSeries+1)
	}
	if v := s[`cairn_requests_total{route="other",cohort="other",target="other",status="other",outcome="other"}`]; v != 50 {
		t.Errorf("other series = %v; want 50", v)
	}
}

func TestMetricsConcurrent(t *testing.T) {
	m := NewMetrics()
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				m.ObserveRecord(&Record{Route: fmt.Sprintf("r%d", (g+i)%7), Status: 200, Outcome: OutcomeOK, LatencyMS: float64(i + 1)})
			}
		}()
	}
	for range 20 {
		checkPrometheusText(t, metricsText(m))
	}
	for range 4 {
		<-done
	}
	s := checkPrometheusText(t, metricsText(m))
	var total float64
	for k, v := range s {
		if strings.HasPrefix(k, "cairn_request_duration_seconds_count{") {
			total += v
		}
	}
	if total != 8000 {
		t.Errorf("latency count total = %v; want 8000", total)
	}
}
