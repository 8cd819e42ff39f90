package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/incidents"
)

// Issue 18: the console's incident page and its chart for an incident with
// 10,000 samples and 24 h of lookback load in under 1 s. The benchmark
// fetches what the page fetches, in parallel as the browser does: the
// page's files, the incident JSON, the live state, the postmortem and the
// chart (drawn from 10,000 capture records spread over the 24 h).
//
//	go test ./proxy -run '^$' -bench ConsoleIncidentPage -benchtime 10x -count 5
const consoleBenchConfig = `
data_dir: {{DATA}}
providers:
  - { name: primary, base_url: "http://127.0.0.1:1/v1" }
  - { name: canary, base_url: "http://127.0.0.1:1/v1" }
routes:
  - name: support-bot
    prompt: { version: v18, system: "You are a refund assistant." }
    targets:
      - { provider: primary, model: gpt-4o-mini, weight: 80 }
      - { provider: canary, model: gpt-4.1-mini, weight: 20, cohort: canary }
    contract: { mode: observe }
detection: { lookback: 24h }
`

func BenchmarkConsoleIncidentPage(b *testing.B) {
	tg := startGateway(b, consoleBenchConfig, nil)
	id := writeBigIncident(b, tg, 10000, 10000, 24*time.Hour)
	// The page's files (every module of the split front end), then its data.
	page := []string{"/ui/", "/ui/style.css"}
	mods, err := filepath.Glob("console/assets/*.js")
	if err != nil || len(mods) == 0 {
		b.Fatalf("console modules: %v %v", mods, err)
	}
	for _, m := range mods {
		page = append(page, "/ui/"+filepath.Base(m))
	}
	data := []string{"/admin/incidents/" + id, "/admin/state", "/admin/incidents/" + id + "/postmortem", "/admin/incidents/" + id + "/chart.svg"}
	page = append(page, data...)
	file := filepath.Join(tg.dir, "data", "incidents", id+".json")
	b.Run("page+chart", func(b *testing.B) { benchmarkFetch(b, tg.admin, page, nil) })
	// Cold: the incident file changed since the last load, so it is
	// decoded again (the first look after an update).
	b.Run("page+chart-cold", func(b *testing.B) {
		n := 0
		benchmarkFetch(b, tg.admin, page, func() {
			n++
			t := time.Now().Add(time.Duration(n) * time.Second)
			if err := os.Chtimes(file, t, t); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("chart", func(b *testing.B) { benchmarkFetch(b, tg.admin, data[3:], nil) })
	b.Run("incident-json", func(b *testing.B) { benchmarkFetch(b, tg.admin, data[:1], nil) })
}

// benchmarkFetch fetches every path at once per iteration (after before,
// untimed, when set) and reports the wall time until the last answer (what
// the page waits for), the process's CPU time per load (gateway and
// client: robust on a loaded machine) and the bytes.
func benchmarkFetch(b *testing.B, base string, paths []string, before func()) {
	b.ReportAllocs()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(paths)}}
	var total, cpu time.Duration
	var size int64
	for b.Loop() {
		if before != nil {
			b.StopTimer()
			before()
			b.StartTimer()
		}
		start, cpu0 := time.Now(), processCPU()
		var wg sync.WaitGroup
		var mu sync.Mutex
		size = 0
		for _, p := range paths {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.Get(base + p)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, r.Body)
				r.Body.Close()
				if r.StatusCode != 200 {
					b.Errorf("GET %s: %d", p, r.StatusCode)
				}
				mu.Lock()
				size += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		total += time.Since(start)
		cpu += processCPU() - cpu0
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/load")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/load")
	b.ReportMetric(float64(size)/(1<<20), "MiB/load")
}

// writeBigIncident writes a resolved incident of the gateway's route with
// nSamples samples and a change lookback before its first failure, and
// nRecords capture records spread over the lookback and the incident, as
// files of the data directory; it returns the incident's ID.
func writeBigIncident(tb testing.TB, tg *testGateway, nSamples, nRecords int, lookback time.Duration) string {
	tb.Helper()
	dataDir := filepath.Join(tg.dir, "data")
	now := time.Now().UTC()
	ff := now.Add(-10 * time.Minute)
	det, mit, res := ff.Add(time.Second), ff.Add(2*time.Second), now.Add(-time.Minute)
	st := tg.live.Load().State()
	rec := func(i int, at time.Time, cohort string, fail bool) capture.Record {
		r := capture.Record{
			GatewayRequestID: fmt.Sprintf("req_%026d", i), ProviderRequestID: fmt.Sprintf("prov-%d", i),
			ReceivedAt: at, Endpoint: "chat.completions", Route: "support-bot", Cohort: cohort,
			Provider: "primary", Model: "gpt-4o-mini", Status: 200, Outcome: capture.OutcomeOK, LatencyMS: 120,
			Usage:    capture.Usage{PromptTokens: 40, CompletionTokens: 20, TotalTokens: 60},
			Contract: capture.Verdict{Verdict: capture.VerdictPass}, BodySampled: true,
			Request:  json.RawMessage(`[{"role":"system","content":"You are a refund assistant."},{"role":"user","content":"Where is my refund for order 1234? Write to [EMAIL]."}]`),
			Response: json.RawMessage(`{"content":"{\"status\":\"refunded\",\"order\":\"1234\",\"eta_days\":3}","finish_reason":"stop"}`),
		}
		if cohort == "canary" {
			r.Provider, r.Model = "canary", "gpt-4.1-mini"
		}
		if fail {
			r.Outcome = capture.OutcomeContractFail
			r.Contract = capture.Verdict{Verdict: capture.VerdictFail, Reasons: []string{"content: text around JSON"}}
		}
		return r
	}
	inc := &incidents.Incident{
		ID: "inc_01m8ybench" + strings.Repeat("0", 16), Status: incidents.StatusResolved,
		OpenedAt: det, FirstFailureAt: ff, DetectedAt: det, MitigatedAt: &mit, ResolvedAt: &res, Resolution: incidents.ResolutionRecovered,
		Trigger: incidents.Trigger{Signal: incidents.SignalContractFailureRate, Route: "support-bot", Cohort: "canary",
			Target: "canary/gpt-4.1-mini", Observed: 1, Threshold: 0.1, Window: configs.Duration(30 * time.Second),
			Requests: 40, Failed: 40, Unit: "fraction"},
		Severity: configs.SeverityPage, Symptom: "40 of 40 responses from canary broke their contract", Layer: incidents.LayerContract,
		State: st,
		Changes: []incidents.AuditEntry{{ID: "aud_1", At: ff.Add(-lookback + time.Minute), Source: incidents.SourceReload, Route: "support-bot",
			Revision: st.Revision, Changes: []configs.Change{{Path: "routes[support-bot].prompt.version", From: "v17", To: "v18"}}}},
		Timeline: []incidents.Event{{At: ff, Kind: incidents.EventFirstFailure, Message: "first failure"},
			{At: det, Kind: incidents.EventDetection, Message: "detected"}, {At: mit, Kind: incidents.EventRollback, Message: "rolled back"}},
		Actions: []incidents.Action{{At: mit, Kind: "rollback", Message: "cohort canary weight 20 -> 0", OK: true}},
		Version: 1, UpdatedAt: now,
	}
	for i := range nSamples {
		switch {
		case i < nSamples*3/10:
			inc.Samples.Before = append(inc.Samples.Before, rec(i, ff.Add(-time.Duration(i)*time.Second), "stable", false))
		case i < nSamples*7/10:
			inc.Samples.During = append(inc.Samples.During, rec(i, ff.Add(time.Duration(i)*time.Millisecond), "canary", true))
		default:
			inc.Samples.After = append(inc.Samples.After, rec(i, mit.Add(time.Duration(i)*time.Millisecond), "stable", false))
		}
	}
	inc.FrozenHash = benchFrozenHash(tb, inc)
	if err := inc.Verify(); err != nil {
		tb.Fatal(err)
	}
	js, err := json.Marshal(inc)
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range []string{"incidents", "capture"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o750); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dataDir, "incidents", inc.ID+".json"), js, 0o600); err != nil {
		tb.Fatal(err)
	}
	// Capture records over the lookback and the incident, in the files of
	// their UTC days.
	from := ff.Add(-lookback)
	span := res.Add(time.Minute).Sub(from)
	files := map[string]*bytes.Buffer{}
	for i := range nRecords {
		at := from.Add(span * time.Duration(i) / time.Duration(nRecords))
		cohort := "stable"
		if i%5 == 0 {
			cohort = "canary"
		}
		fail := cohort == "canary" && !at.Before(ff) && at.Before(mit)
		r := rec(100000+i, at, cohort, fail)
		line, err := json.Marshal(r)
		if err != nil {
			tb.Fatal(err)
		}
		day := at.Format("2006-01-02")
		if files[day] == nil {
			files[day] = &bytes.Buffer{}
		}
		files[day].Write(append(line, '\n'))
	}
	for day, buf := range files {
		if err := os.WriteFile(filepath.Join(dataDir, "capture", "capture-"+day+"-9000.jsonl"), buf.Bytes(), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return inc.ID
}

// benchFrozenHash is the incident's frozen hash as incidents computes it:
// SHA-256 of the canonical JSON of state, trigger and changes.
func benchFrozenHash(tb testing.TB, inc *incidents.Incident) string {
	b, err := json.Marshal(struct {
		State   configs.State          `json:"state"`
		Trigger incidents.Trigger      `json:"trigger"`
		Changes []incidents.AuditEntry `json:"changes"`
	}{inc.State, inc.Trigger, inc.Changes})
	if err != nil {
		tb.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatal(err)
	}
	c, _ := json.Marshal(v)
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:])
}
