package main

// Issue 20: the Prometheus rules (deploy/prometheus) pass `promtool check
// rules` and their unit tests (`promtool test rules`), and every metric the
// rules and the Grafana dashboard (deploy/grafana/cairn.json) query is one
// that /metrics of a running `cairn serve` exposes, with the labels the
// queries select on. The gateway runs with Redis, tracing, a priced route and
// a rate-limited key, and gets traffic through the mock provider first, so
// the series exist.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/internal/redistest"
)

const (
	rulesFile     = "../../deploy/prometheus/cairn-rules.yml"
	rulesTestFile = "../../deploy/prometheus/cairn-rules.test.yml"
	dashboardFile = "../../deploy/grafana/cairn.json"
)

// family is one metric family on /metrics: its type and the label names
// its series carry.
type family struct {
	typ    string
	labels map[string]bool
	series int
}

var (
	scrapeOnce sync.Once
	scraped    map[string]*family
	scrapeErr  string
)

const deployMetricsConfig = `
listen: %s
admin_listen: %s
admin_token_env: METRICS_ADMIN_TOKEN
data_dir: %s
redis_url: %s
release: "metrics"
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 3s }
keys:
  - { name: app, key_env: METRICS_APP_KEY }
  - { name: tight, key_env: METRICS_TIGHT_KEY, rpm: 1 }
routes:
  - name: support-bot
    targets:
      - { provider: mock, model: gpt-4o-mini, weight: 80 }
      - { provider: mock, model: gpt-4.1-mini, weight: 20, cohort: canary }
    fallbacks: [ { provider: mock, model: gpt-4o-mini } ]
pricing:
  - { provider: mock, model: gpt-4o-mini, input: 0.15, output: 0.60 }
tracing: { otlp_endpoint: "http://%s", sample_ratio: 1 }
`

// gatewayMetrics starts one gateway (once per test binary), sends traffic
// and parses its /metrics.
func gatewayMetrics(t *testing.T) map[string]*family {
	t.Helper()
	scrapeOnce.Do(func() {
		scrapeErr = "the gateway did not start (see the first test that needed it)"
		scraped, scrapeErr = scrapeGateway(t)
	})
	if scrapeErr != "" {
		t.Fatal(scrapeErr)
	}
	return scraped
}

func scrapeGateway(t *testing.T) (map[string]*family, string) {
	rd := redistest.Start(t)
	mock := startMockProc(t, "metrics")
	deadCollector := deadAddr(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(deployMetricsConfig, anyPort, anyPort, filepath.Join(dir, "data"), rd.URL(), mock, deadCollector)
	g := serveConfig(t, filepath.Join(dir, "cairn.yaml"), cfg,
		"METRICS_ADMIN_TOKEN=adm-metrics", "METRICS_APP_KEY=gw-metrics-app", "METRICS_TIGHT_KEY=gw-metrics-tight")

	chat := func(key, body string) {
		req, _ := http.NewRequest("POST", g.api+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for i := range 20 {
		chat("gw-metrics-app", fmt.Sprintf(`{"model":"support-bot","user":"u%d","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"hi"}]}`, i))
	}
	chat("gw-metrics-app", `{"model":"support-bot","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	chat("wrong-key", `{"model":"support-bot","messages":[]}`)
	for range 3 { // rpm 1: the second and third are refused by the limiter
		chat("gw-metrics-tight", `{"model":"support-bot","messages":[{"role":"user","content":"hi"}]}`)
	}

	req, _ := http.NewRequest("GET", g.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer adm-metrics")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Sprintf("GET /metrics: %s", resp.Status)
	}
	fams, problems := parseExposition(string(body))
	if len(problems) > 0 {
		return nil, "/metrics is not valid exposition:\n" + strings.Join(problems, "\n")
	}
	return fams, ""
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)
)

// parseExposition reads Prometheus text format: every family's TYPE, the
// label names of its series; a series repeated, a sample without a TYPE or
// a TYPE given twice is a problem (Prometheus drops such samples).
func parseExposition(text string) (map[string]*family, []string) {
	fams := map[string]*family{}
	seen := map[string]bool{}
	var problems []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "# TYPE ") {
			f := strings.Fields(l)
			if len(f) != 4 {
				problems = append(problems, "bad TYPE line: "+l)
				continue
			}
			if fams[f[2]] != nil {
				problems = append(problems, "TYPE given twice: "+f[2])
			}
			fams[f[2]] = &family{typ: f[3], labels: map[string]bool{}}
			continue
		}
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := sampleRE.FindStringSubmatch(l)
		if m == nil {
			problems = append(problems, "unparsable sample: "+l)
			continue
		}
		name := m[1]
		if seen[name+m[2]] {
			problems = append(problems, "series repeated: "+name+m[2])
		}
		seen[name+m[2]] = true
		fam := fams[name]
		if fam == nil {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if f := fams[strings.TrimSuffix(name, suf)]; f != nil && strings.HasSuffix(name, suf) && f.typ == "histogram" {
					fam = f
				}
			}
		}
		if fam == nil {
			problems = append(problems, "sample without a TYPE: "+name)
			continue
		}
		fam.series++
		for _, lm := range labelRE.FindAllStringSubmatch(m[3], -1) {
			if lm[1] != "le" {
				fam.labels[lm[1]] = true
			}
		}
	}
	return fams, problems
}

func TestDeployParseExpositionFindsRepeats(t *testing.T) {
	// The check behind "no series repeated" (cairn_target_circuit_open
	// printed a target that is also a fallback twice).
	_, p := parseExposition("# TYPE a gauge\na{x=\"1\"} 0\na{x=\"1\"} 0\nb 1\n")
	if len(p) != 2 {
		t.Errorf("parseExposition problems = %q; want the repeat and the untyped sample", p)
	}
}

var (
	metricTokRE  = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	selectorRE   = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcherRE    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	templateVars = regexp.MustCompile(`\$\{?[a-zA-Z_]+\}?`)
)

// checkQuery checks that every cairn_ metric expr names is a family on
// /metrics (histograms by _bucket, _sum, _count), every label it selects on
// is one that family's series carry, and every cairn: recording rule it
// reads is defined.
func checkQuery(t *testing.T, where, expr string, fams map[string]*family, records map[string]bool) int {
	t.Helper()
	e := templateVars.ReplaceAllString(expr, "x")
	// Strings ("..."), label names after by/without, and functions are
	// not metric names; only cairn_ and cairn: tokens are checked.
	e = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(e, `""`)
	n := 0
	for _, tok := range metricTokRE.FindAllString(e, -1) {
		switch {
		case strings.HasPrefix(tok, "cairn:"):
			n++
			if !records[tok] {
				t.Errorf("%s: recording rule %s is not defined in %s", where, tok, rulesFile)
			}
		case strings.HasPrefix(tok, "cairn_"):
			n++
			if metricFamily(tok, fams) == nil {
				t.Errorf("%s: metric %s is not on /metrics of a running gateway", where, tok)
			}
		}
	}
	for _, sel := range selectorRE.FindAllStringSubmatch(e, -1) {
		f := metricFamily(sel[1], fams)
		if f == nil || f.series == 0 {
			continue
		}
		for _, m := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
			if m[1] != "le" && m[1] != "job" && m[1] != "instance" && !f.labels[m[1]] {
				t.Errorf("%s: %s has no label %q (its labels: %v)", where, sel[1], m[1], slices.Sorted(maps.Keys(f.labels)))
			}
		}
	}
	return n
}

func metricFamily(name string, fams map[string]*family) *family {
	if f := fams[name]; f != nil {
		return f
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if f := fams[strings.TrimSuffix(name, suf)]; f != nil && strings.HasSuffix(name, suf) && f.typ == "histogram" {
			return f
		}
	}
	return nil
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) (ruleFile, map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	records := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records[r.Record] = true
			}
		}
	}
	return rf, records
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (apt-get install -y prometheus) or run ./scripts/test")
	}
	return p
}

func TestDeployPrometheusRules(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(pt, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	rf, records := loadRules(t)
	// Every alert the issue names is there, and each has a unit test.
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
				if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
					t.Errorf("alert %s has no unit test in %s", r.Alert, rulesTestFile)
				}
			}
		}
	}
	for _, want := range []string{"CairnIncidentOpenPage", "CairnIncidentOpenInvestigate", "CairnCaptureRecordsLost",
		"CairnRedisErrors", "CairnCircuitOpen", "CairnContractFailureRate", "CairnLatencyP99High", "CairnScrapeDown"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("rules have no alert %s", want)
		}
	}
	fams := gatewayMetrics(t)
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n += checkQuery(t, "rule "+r.Record+r.Alert, r.Expr, fams, records)
		}
	}
	t.Logf("%d metric references in %d rules checked against /metrics", n, len(alerts)+len(records))
}

func TestDeployGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	// Every PromQL expression: panel targets and template variable queries.
	var exprs []string
	var titles []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok && v["type"] != nil && v["type"] != "row" {
				titles = append(titles, s)
			}
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	if len(exprs) < 20 {
		t.Fatalf("dashboard has %d queries; want the panels the issue lists", len(exprs))
	}
	_, records := loadRules(t)
	fams := gatewayMetrics(t)
	n := 0
	for _, e := range exprs {
		n += checkQuery(t, "dashboard", e, fams, records)
	}
	// The panels the issue lists.
	all := strings.ToLower(strings.Join(titles, "\n"))
	for _, want := range []string{"requests", "errors", "contract", "latency", "first token", "tokens", "cost",
		"rate-limited", "capture queue", "lost", "incidents"} {
		if !strings.Contains(all, want) {
			t.Errorf("no dashboard panel about %q (titles: %v)", want, titles)
		}
	}
	if !strings.Contains(string(b), "/admin/incidents/${__value.raw}") {
		t.Error("the incidents table does not link to each incident")
	}
	t.Logf("%d metric references in %d queries checked against /metrics", n, len(exprs))
}
