package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/cairnhq/cairn/loadtest"
)

const evalE2EConfig = `
listen: %s
admin_listen: %s
data_dir: %s
release: "e2e"
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 3s }
  - { name: canary, base_url: "http://%s/v1", timeout: 3s }
routes:
  - name: support-bot
    sticky: user
    prompt: { version: v18 }
    targets:
      - { provider: primary, model: gpt-4o-mini, weight: 50 }
      - { provider: canary, model: gpt-4.1-mini, weight: 50, cohort: canary }
    auto_rollback: true
  - name: steady
    sticky: user
    targets:
      - { provider: primary, model: steady-a, weight: 50 }
      - { provider: primary, model: steady-b, weight: 50, cohort: canary }
    auto_rollback: true
detection:
  window: 30s
  eval: { window: 60s, min_scores: 30, drop_points: { investigate: 2, page: 5 } }
pricing:
  - { provider: primary, model: "*", input: 0.15, output: 0.6 }
notify: { webhooks: [ { url: "%s" } ] }
`

// scorer reads answers and posts their judge scores to /admin/scores in
// batches, as an online eval pipeline beside an application would.
type scorer struct {
	admin string
	judge loadtest.Judge
	mu    sync.Mutex
	batch []map[string]any
	posts int
}

func (s *scorer) add(t *testing.T, id, content string) {
	s.mu.Lock()
	s.batch = append(s.batch, map[string]any{"request_id": id, "name": "helpfulness", "value": s.judge.Score(content), "source": "judge-e2e"})
	var out []map[string]any
	if len(s.batch) >= 10 {
		out, s.batch = s.batch, nil
	}
	s.mu.Unlock()
	if out != nil {
		s.post(t, out)
	}
}

func (s *scorer) post(t *testing.T, items []map[string]any) {
	b, _ := json.Marshal(items)
	r, err := http.Post(s.admin+"/admin/scores", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Errorf("post scores: %v", err)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	var res struct {
		Accepted int `json:"accepted"`
	}
	if r.StatusCode != 200 || json.Unmarshal(body, &res) != nil || res.Accepted != len(items) {
		t.Errorf("POST /admin/scores = %d %s; want all %d accepted", r.StatusCode, body, len(items))
	}
	s.mu.Lock()
	s.posts++
	s.mu.Unlock()
}

// Issue 16, done when: the real binary, the official OpenAI SDK as the
// client and a scorer posting over HTTP. The canary of support-bot starts
// answering worse: eval_drift opens exactly one incident on that cohort,
// which reaches page and is rolled back; route steady, whose two cohorts
// score the same with ±3 points of noise, opens none. Webhooks carry the
// severity.
func TestE2EEvalDrift(t *testing.T) {
	dir := t.TempDir()
	hooks := newHookSink(t)
	var mocks []string
	for i := range 2 {
		mocks = append(mocks, startMockProc(t, fmt.Sprintf("ev%d", i)))
	}
	g := serveConfig(t, filepath.Join(dir, "cairn.yaml"), fmt.Sprintf(evalE2EConfig, anyPort, anyPort, filepath.Join(dir, "data"), mocks[0], mocks[1], hooks.url))

	c := openai.NewClient(option.WithBaseURL(g.api+"/v1"), option.WithAPIKey("none"), option.WithMaxRetries(0))
	sc := &scorer{admin: g.admin, judge: loadtest.DefaultJudge()}
	ctx := context.Background()
	n := 0
	var firstID string
	ask := func(route string) {
		n++
		var raw *http.Response
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    route,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Where is my refund?")},
			User:     openai.String(fmt.Sprintf("user-%d", n)),
		}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatalf("chat %s: %v", route, err)
		}
		if firstID == "" {
			firstID = raw.Header.Get("x-request-id")
		}
		sc.add(t, raw.Header.Get("x-request-id"), resp.Choices[0].Message.Content)
	}
	incidents := func() []map[string]any {
		r, err := http.Get(g.admin + "/admin/incidents")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var list []map[string]any
		json.NewDecoder(r.Body).Decode(&list)
		return list
	}
	// Healthy: both routes, both cohorts, scores ±3 points around 0.85.
	for range 120 {
		ask("support-bot")
		ask("steady")
	}
	if l := incidents(); len(l) != 0 {
		t.Fatalf("healthy traffic opened incidents: %v", l)
	}
	// The canary starts answering worse.
	ctl := loadtest.MockControl{BaseURL: "http://" + mocks[1]}
	if err := ctl.SetFault(ctx, "gpt-4.1-mini", loadtest.Fault{Degrade: true}); err != nil {
		t.Fatal(err)
	}
	var inc map[string]any
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ask("support-bot")
		ask("steady")
		if l := incidents(); len(l) > 0 && l[0]["severity"] == "page" && l[0]["status"] != "open" {
			inc = l[0]
			break
		}
	}
	if inc == nil {
		t.Fatalf("no eval_drift incident reached page and mitigation; incidents: %v", incidents())
	}
	// A little more traffic: nothing new opens.
	for range 40 {
		ask("support-bot")
		ask("steady")
	}
	l := incidents()
	if len(l) != 1 || l[0]["signal"] != "eval_drift" || l[0]["cohort"] != "canary" || l[0]["route"] != "support-bot" {
		t.Fatalf("incidents = %v; want exactly one eval_drift incident on support-bot/canary", l)
	}
	r, _ := http.Get(g.admin + "/admin/incidents/" + l[0]["id"].(string))
	full, _ := io.ReadAll(r.Body)
	r.Body.Close()
	var got struct {
		Severity string `json:"severity"`
		Trigger  struct {
			Requests  int64  `json:"requests"`
			BaselineN int64  `json:"baseline_n"`
			Severity  string `json:"severity"`
		} `json:"trigger"`
		Samples struct {
			During []map[string]any `json:"during"`
			Scores []struct {
				Value float64 `json:"value"`
			} `json:"scores"`
		} `json:"samples"`
		Actions []map[string]any `json:"actions"`
		Cost    struct {
			TotalCostUSD *float64 `json:"total_cost_usd"`
		} `json:"cost"`
	}
	if err := json.Unmarshal(full, &got); err != nil {
		t.Fatal(err)
	}
	if got.Severity != "page" || got.Trigger.Requests < 30 || got.Trigger.BaselineN < 30 || len(got.Samples.Scores) == 0 || len(got.Samples.During) == 0 {
		t.Errorf("incident = severity %q, n %d/%d, %d scores, %d during samples", got.Severity, got.Trigger.Requests, got.Trigger.BaselineN, len(got.Samples.Scores), len(got.Samples.During))
	}
	for _, s := range got.Samples.Scores {
		if s.Value > 0.80 {
			t.Errorf("a 'during' sample scored %v: not among the lowest", s.Value)
		}
	}
	if got.Cost.TotalCostUSD == nil || *got.Cost.TotalCostUSD <= 0 {
		t.Errorf("cost.total_cost_usd = %v; want the priced route's spend (seeded from the window when the incident opened)", got.Cost.TotalCostUSD)
	}
	rolled := false
	for _, a := range got.Actions {
		rolled = rolled || a["kind"] == "rollback"
	}
	if !rolled {
		t.Errorf("no rollback action on the page incident: %s", full)
	}
	pm, _ := http.Get(g.admin + "/admin/incidents/" + l[0]["id"].(string) + "/postmortem")
	pmb, _ := io.ReadAll(pm.Body)
	pm.Body.Close()
	for _, want := range []string{"**Severity**: page", "Threshold in force", "helpfulness"} {
		if !strings.Contains(string(pmb), want) {
			t.Errorf("postmortem lacks %q", want)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		all := string(bytes.Join(hooks.received(), []byte("\n")))
		if strings.Contains(all, `"severity":"page"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no webhook carried the severity: %s", all)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Bad scores are refused item by item and lose nothing else; 10,001
	// at once is a 413 that stores nothing.
	metric := func() string {
		r, err := http.Get(g.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, `cairn_scores_received_total{route="steady",cohort="stable"`) {
				return line
			}
		}
		return ""
	}
	beforeBad := metric()
	mixed := `[{"request_id":"req_nope","name":"helpfulness","value":0.5},{"request_id":"` + firstID + `","name":"helpfulness","value":NaN},` +
		`{"request_id":"` + firstID + `","name":"helpfulness","value":"high"},{"request_id":"` + firstID + `","name":"helpfulness","value":0.9}]`
	pr, err := http.Post(g.admin+"/admin/scores", "application/json", strings.NewReader(mixed))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(pr.Body)
	pr.Body.Close()
	if pr.StatusCode != 200 || !strings.Contains(string(pb), `"accepted":1`) || strings.Count(string(pb), `"index"`) != 3 {
		t.Errorf("mixed scores = %d %s; want 1 accepted and 3 rejected", pr.StatusCode, pb)
	}
	big := "[" + strings.TrimSuffix(strings.Repeat(`{"request_id":"`+firstID+`","name":"bulk","value":0.5},`, 10_001), ",") + "]"
	pr, err = http.Post(g.admin+"/admin/scores", "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("10,001 scores = %d; want 413", pr.StatusCode)
	}
	if after := metric(); after != beforeBad {
		t.Errorf("scores of route steady changed from %q to %q by the bad calls", beforeBad, after)
	}

	// The CLI lists a request's scores, from the files alone.
	out, err := exec.Command(cairnBin, "requests", "show", firstID, "--data-dir", filepath.Join(dir, "data")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"scores"`) || !strings.Contains(string(out), `"name": "helpfulness"`) || strings.Contains(string(out), `"bulk"`) {
		t.Errorf("cairn requests show %s = %v:\n%s\nwant the record with its scores", firstID, err, out)
	}
	t.Logf("figure: eval_drift e2e: %d requests, %d score posts, incident %s severity %s (detected at %s)", n, sc.posts, l[0]["id"], got.Severity, got.Trigger.Severity)
}
