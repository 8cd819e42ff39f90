package main

// Issue 20: tracing.otlp_endpoint end to end against a real OpenTelemetry
// Collector (internal/otelcol-test: the collector's own OTLP receiver and
// service, built here from go.opentelemetry.io/collector modules), through
// the real cairn binary: spans arrive with the gen_ai.* attributes, the
// gateway request ID and the trace ID from the client's traceparent; with
// the collector stopped, requests are not slowed and every span not
// delivered is counted on /metrics.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const otelcolDir = "../../internal/otelcol-test"

var (
	otelcolOnce sync.Once
	otelcolBin  string
	otelcolErr  error
)

// buildOtelcol builds the test collector once per test binary, cached
// across runs under the user cache directory by a hash of its sources (the
// Go build cache makes a rebuild cheap too; a fresh machine downloads the
// collector modules and compiles them, which the test logs).
func buildOtelcol(t *testing.T) string {
	t.Helper()
	otelcolOnce.Do(func() {
		h := sha256.New()
		files, _ := filepath.Glob(filepath.Join(otelcolDir, "*"))
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				otelcolErr = err
				return
			}
			fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
			h.Write(b)
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "cairn-test")
		bin := filepath.Join(dir, "otelcol-test-"+hex.EncodeToString(h.Sum(nil))[:16])
		if _, err := os.Stat(bin); err == nil {
			otelcolBin = bin
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			otelcolErr = err
			return
		}
		tmp := bin + ".tmp" + strconv.Itoa(os.Getpid())
		t0 := time.Now()
		cmd := exec.Command("go", "build", "-o", tmp, ".")
		cmd.Dir = otelcolDir
		if out, err := cmd.CombinedOutput(); err != nil {
			otelcolErr = fmt.Errorf("build the test collector: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "figure: built the OpenTelemetry test collector in %v\n", time.Since(t0).Round(100*time.Millisecond))
		if err := os.Rename(tmp, bin); err != nil {
			otelcolErr = err
			return
		}
		otelcolBin = bin
	})
	if otelcolErr != nil {
		t.Fatal(otelcolErr)
	}
	return otelcolBin
}

type collectorProc struct {
	addr, spans string
	p           *proc
}

// startCollector runs the test collector with an OTLP/HTTP receiver and
// waits until it accepts an export. The collector must be told its port;
// startForeign retries another when the port was taken before it bound it.
func startCollector(t *testing.T) *collectorProc {
	t.Helper()
	bin := buildOtelcol(t)
	dir := t.TempDir()
	c := &collectorProc{spans: filepath.Join(dir, "spans.jsonl")}
	command := func(addr string) *exec.Cmd {
		cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
exporters:
  jsonfile:
    path: %s
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jsonfile]
`, addr, c.spans)
		cfgPath := filepath.Join(dir, "collector.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return exec.Command(bin, "--config", "file:"+cfgPath)
	}
	ready := func(p *proc, addr string) error {
		deadline := time.Now().Add(startupWait)
		for {
			// The OTLP/HTTP receiver answers an empty export with 200.
			r, err := http.Post("http://"+addr+"/v1/traces", "application/json", strings.NewReader("{}"))
			if err == nil {
				r.Body.Close()
				if r.StatusCode == 200 {
					return nil
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the collector did not come up on %s: %v", addr, err)
			}
			select {
			case <-p.done:
				return fmt.Errorf("the collector on %s: %s", addr, p.exitReport())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	c.p, c.addr = startForeign(t, "collector", command, ready)
	return c
}

// stop kills the collector and waits until it has exited.
func (c *collectorProc) stop() { c.p.kill() }

// otlpSpan is a span as the collector wrote it (OTLP JSON), with its
// resource's attributes.
type otlpSpan struct {
	TraceID, SpanID, ParentSpanID, Name string
	Attrs, Resource                     map[string]string
}

func otlpAttrs(kvs []struct {
	Key   string                     `json:"key"`
	Value map[string]json.RawMessage `json:"value"`
}) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		for _, v := range kv.Value {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(v)
			}
			out[kv.Key] = s
		}
	}
	return out
}

func readSpans(t *testing.T, path string) []otlpSpan {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type kvList = []struct {
		Key   string                     `json:"key"`
		Value map[string]json.RawMessage `json:"value"`
	}
	var out []otlpSpan
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var batch struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes kvList `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []struct {
						TraceID      string `json:"traceId"`
						SpanID       string `json:"spanId"`
						ParentSpanID string `json:"parentSpanId"`
						Name         string `json:"name"`
						Attributes   kvList `json:"attributes"`
					} `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.Unmarshal(sc.Bytes(), &batch); err != nil {
			t.Fatalf("collector output line: %v", err)
		}
		for _, rs := range batch.ResourceSpans {
			res := otlpAttrs(rs.Resource.Attributes)
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, otlpSpan{TraceID: s.TraceID, SpanID: s.SpanID, ParentSpanID: s.ParentSpanID,
						Name: s.Name, Attrs: otlpAttrs(s.Attributes), Resource: res})
				}
			}
		}
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// scrapeTraceMetrics reads the cairn_trace_* samples from /metrics.
func scrapeTraceMetrics(t *testing.T, admin string) map[string]int64 {
	t.Helper()
	r, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	out := map[string]int64{}
	for _, m := range regexp.MustCompile(`(?m)^(cairn_trace_\S+) (\d+)$`).FindAllStringSubmatch(string(b), -1) {
		out[m[1]], _ = strconv.ParseInt(m[2], 10, 64)
	}
	return out
}

func TestTracingCollectorE2E(t *testing.T) {
	col := startCollector(t)
	mock := startMockProc(t, "traced")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
listen: %s
admin_listen: %s
data_dir: %s
release: "traced"
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 3s }
routes:
  - name: support-bot
    prompt: { version: v7 }
    targets: [ { provider: mock, model: gpt-4o-mini } ]
tracing: { otlp_endpoint: "http://%s", sample_ratio: 1 }
`, anyPort, anyPort, filepath.Join(dir, "data"), mock, col.addr)
	// A short schedule delay so the test does not wait 5 s per batch; a
	// small queue and export timeout so the outage below overflows it.
	g := serveConfig(t, filepath.Join(dir, "cairn.yaml"), cfg,
		"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_BSP_MAX_QUEUE_SIZE=32", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=8", "OTEL_BSP_EXPORT_TIMEOUT=2000")

	type sent struct{ traceID, parentID, requestID string }
	chat := func(stream bool, tp string) (string, time.Duration) {
		t.Helper()
		body := `{"model":"support-bot","max_tokens":50,"temperature":0.2,"messages":[{"role":"user","content":"hi"}]}`
		if stream {
			body = `{"model":"support-bot","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
		}
		req, _ := http.NewRequest("POST", g.api+"/v1/chat/completions", strings.NewReader(body))
		if tp != "" {
			req.Header.Set("traceparent", tp)
		}
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("chat: %s", resp.Status)
		}
		return resp.Header.Get("x-request-id"), time.Since(t0)
	}
	var sends []sent
	for i := range 6 {
		s := sent{traceID: randHex(16), parentID: randHex(8)}
		s.requestID, _ = chat(i == 5, "00-"+s.traceID+"-"+s.parentID+"-01")
		sends = append(sends, s)
	}

	// Every span reaches the collector.
	byTrace := map[string]otlpSpan{}
	deadline := time.Now().Add(30 * time.Second)
	for len(byTrace) < len(sends) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		for _, s := range readSpans(t, col.spans) {
			byTrace[s.TraceID] = s
		}
	}
	for i, s := range sends {
		sp, ok := byTrace[s.traceID]
		if !ok {
			t.Errorf("request %d: no span with the client's trace ID %s reached the collector (got %d spans)", i, s.traceID, len(byTrace))
			continue
		}
		if sp.ParentSpanID != s.parentID {
			t.Errorf("request %d: span parent %s; want the client's span %s", i, sp.ParentSpanID, s.parentID)
		}
		want := map[string]string{
			"gen_ai.operation.name":     "chat",
			"gen_ai.provider.name":      "mock",
			"gen_ai.request.model":      "support-bot",
			"cairn.gateway_request_id":  s.requestID,
			"cairn.route":               "support-bot",
			"cairn.prompt_version":      "v7",
			"http.response.status_code": "200",
		}
		if i < 5 {
			want["gen_ai.request.max_tokens"] = "50"
			want["gen_ai.request.temperature"] = "0.2"
		} else {
			want["cairn.stream"] = "true"
		}
		for k, v := range want {
			if sp.Attrs[k] != v {
				t.Errorf("request %d: span attribute %s = %q; want %q", i, k, sp.Attrs[k], v)
			}
		}
		for _, k := range []string{"gen_ai.response.model", "gen_ai.response.id", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"} {
			if sp.Attrs[k] == "" {
				t.Errorf("request %d: span has no %s (attributes %v)", i, k, sp.Attrs)
			}
		}
		if sp.Resource["service.name"] != "cairn" || sp.Resource["service.version"] != "traced" {
			t.Errorf("span resource = %v; want service.name cairn, service.version the release", sp.Resource)
		}
	}
	if t.Failed() {
		return
	}
	if m := scrapeTraceMetrics(t, g.admin); m["cairn_trace_spans_exported_total"] < int64(len(sends)) {
		t.Errorf("/metrics: exported %d spans; the collector got %d", m["cairn_trace_spans_exported_total"], len(sends))
	}

	// The collector goes away: requests are served as before, and what
	// does not reach it is counted.
	col.stop()
	const n = 100
	var worst time.Duration
	for i := range n {
		_, d := chat(i%10 == 0, "")
		worst = max(worst, d)
	}
	// A request that waited on an export would take the export timeout
	// (2 s) or the exporter's retry backoff (5 s).
	if worst >= 2*time.Second {
		t.Errorf("slowest request with the collector down took %v", worst)
	}
	var m map[string]int64
	deadline = time.Now().Add(30 * time.Second)
	for {
		m = scrapeTraceMetrics(t, g.admin)
		var dropped int64
		for _, r := range []string{"queue_full", "export_failed", "collector_down", "shutdown"} {
			dropped += m[`cairn_trace_spans_dropped_total{reason="`+r+`"}`]
		}
		// Every span ended after the collector stopped is dropped (the
		// first batch's export fails, then spans are not built while the
		// collector is in backoff) and counted once the queue has drained.
		if m["cairn_trace_spans_ended_total"] == int64(len(sends)+n) && m["cairn_trace_spans_pending"] == 0 &&
			m["cairn_trace_spans_exported_total"] == int64(len(sends)) && dropped == n &&
			m[`cairn_trace_spans_dropped_total{reason="collector_down"}`] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics trace accounting after the collector stopped: %v; want ended %d = exported %d + dropped %d", m, len(sends)+n, len(sends), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("figure: collector down: %d requests, slowest %v; spans %v", n, worst.Round(time.Millisecond), m)
}
