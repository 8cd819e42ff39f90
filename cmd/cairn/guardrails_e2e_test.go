package main

// End-to-end for issue 16's guardrail signals: the real binary, two mock
// provider processes (stable and canary), the official OpenAI Go SDK as the
// client, and a webhook receiver on loopback.

import (
	"context"
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

	"github.com/openai/openai-go/v3"

	"github.com/cairnhq/cairn/loadtest"
)

const guardConfig = `
listen: %s
admin_listen: %s
data_dir: %s
release: "e2e-guardrails"
providers:
  - { name: stable, base_url: "http://%s/v1", timeout: 3s }
  - { name: canary, base_url: "http://%s/v1", timeout: 3s }
keys:
  - { name: app, key_env: E2E_APP_KEY }
routes:
  - name: support-bot
    sticky: user
    prompt: { version: v19, system: "You are a refund assistant." }
    targets:
      - { provider: stable, model: gpt-4o-mini, weight: 70 }
      - { provider: canary, model: gpt-4.1-mini, weight: 30, cohort: canary }
    auto_rollback: true
detection:
  window: 3s
  min_requests: 10
  # The mocks answer in 20 ms: p99 noise on a busy test machine is not what
  # this test is about.
  latency_p99_ratio: 50
notify:
  webhooks: [{ url: "%s" }]
`

// guardStack is one gateway with its mocks and webhook receiver.
type guardStack struct {
	e2e
	hooks *hookSink
}

func startGuardStack(t *testing.T) *guardStack {
	t.Helper()
	return startGuardStackConfig(t, guardConfig)
}

// startGuardStackConfig is startGuardStack with another config of the same
// shape (its placeholders in guardConfig's order).
func startGuardStackConfig(t *testing.T, config string) *guardStack {
	t.Helper()
	dir := t.TempDir()
	s := &guardStack{}
	s.dataDir, s.cfgPath = filepath.Join(dir, "data"), filepath.Join(dir, "cairn.yaml")
	for _, name := range []string{"stable", "canary"} {
		s.mocks = append(s.mocks, startMockProc(t, name, "--latency", "20ms"))
	}
	s.hooks = newHookSink(t)
	cfg := fmt.Sprintf(config, anyPort, anyPort, s.dataDir, s.mocks[0], s.mocks[1], s.hooks.url)
	g := serveConfig(t, s.cfgPath, cfg, "E2E_APP_KEY=gw-e2e-app")
	s.api, s.admin, s.gw = g.api, g.admin, g.gw
	return s
}

// send makes n chat calls through the SDK from distinct users (so both
// cohorts get traffic), four at a time.
func (s *guardStack) send(t *testing.T, from, n int) {
	t.Helper()
	c := s.client()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				params := openai.ChatCompletionNewParams{
					Model:    "support-bot",
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Where is my refund?")},
					User:     openai.String(fmt.Sprintf("user-%d", i%97)),
				}
				if i%3 == 0 {
					st := c.Chat.Completions.NewStreaming(context.Background(), params)
					for st.Next() {
					}
					if err := st.Err(); err != nil {
						errs <- err
					}
					continue
				}
				if _, err := c.Chat.Completions.New(context.Background(), params); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := from; i < from+n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed: %v", err)
		break
	}
}

type guardIncident struct {
	ID       string `json:"id"`
	Class    string `json:"class"`
	Severity string `json:"severity"`
	Trigger  struct {
		Signal, Cohort string
		Severity       string `json:"severity"`
	} `json:"trigger"`
	Timeline []struct {
		Kind string `json:"kind"`
	} `json:"timeline"`
	Actions []struct {
		Kind string `json:"kind"`
		OK   bool   `json:"ok"`
	} `json:"actions"`
}

func (s *guardStack) incidents(t *testing.T) []guardIncident {
	t.Helper()
	var out []guardIncident
	if err := json.Unmarshal(s.get(t, "/admin/incidents"), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *guardStack) get(t *testing.T, path string) []byte {
	t.Helper()
	r, err := http.Get(s.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, r.StatusCode, b)
	}
	return b
}

// runGuardSignal drives healthy traffic (no incident), then the canary
// fault, and returns the one incident it opened, rolled back.
func runGuardSignal(t *testing.T, s *guardStack, fault, signal string) guardIncident {
	t.Helper()
	s.send(t, 0, 240)
	if incs := s.incidents(t); len(incs) != 0 {
		t.Fatalf("healthy traffic opened %d incidents: %+v", len(incs), incs)
	}
	setFault(t, s.mocks[1], `{"model":"*","fault":`+fault+`}`)
	deadline := time.Now().Add(20 * time.Second)
	done := func() bool { return len(s.incidents(t)) > 0 || time.Now().After(deadline) }
	for i := 240; !done(); i += 40 {
		s.send(t, i, 40)
	}
	// A little more traffic after detection: no second incident may open.
	s.send(t, 100000, 80)
	incs := s.incidents(t)
	if len(incs) != 1 {
		t.Fatalf("%d incidents; want exactly one: %+v", len(incs), incs)
	}
	// Rollback acts on page only: an incident opened at investigate is
	// rolled back once the canary's traffic raises it to page.
	var inc guardIncident
	for i := 200000; ; i += 40 {
		inc = guardIncident{}
		if err := json.Unmarshal(s.get(t, "/admin/incidents/"+incs[0].ID), &inc); err != nil {
			t.Fatal(err)
		}
		if inc.Severity == "page" || time.Now().After(deadline) {
			break
		}
		s.send(t, i, 40)
	}
	t.Logf("%s detected at %s, now %s", signal, inc.Trigger.Severity, inc.Severity)
	if inc.Severity != "page" {
		t.Errorf("incident severity %q; want page", inc.Severity)
	}
	if inc.Trigger.Severity == "investigate" {
		raised := false
		for _, e := range inc.Timeline {
			raised = raised || e.Kind == "severity_raised"
		}
		if !raised {
			t.Error("detected at investigate, at page now, and no severity_raised event")
		}
	}
	if n := len(s.incidents(t)); n != 1 {
		t.Errorf("%d incidents after the raise; want one", n)
	}
	if inc.Trigger.Signal != signal || inc.Trigger.Cohort != "canary" {
		t.Errorf("incident signal %q cohort %q; want %s on canary", inc.Trigger.Signal, inc.Trigger.Cohort, signal)
	}
	rolled := false
	for _, a := range inc.Actions {
		rolled = rolled || a.Kind == "rollback" && a.OK
	}
	if !rolled {
		t.Errorf("the canary was not rolled back: %+v", inc.Actions)
	}
	return inc
}

func TestE2EGuardrailSignals(t *testing.T) {
	t.Run("pii_leak_rate", func(t *testing.T) {
		s := startGuardStack(t)
		inc := runGuardSignal(t, s, `{"leak_pii":true}`, "pii_leak_rate")
		if inc.Class != "security" {
			t.Errorf("class %q; want security", inc.Class)
		}
		metrics := string(s.get(t, "/metrics"))
		if !strings.Contains(metrics, `cairn_pii_leaks_total{route="support-bot",cohort="canary",target="canary/gpt-4.1-mini"}`) {
			t.Errorf("metrics lack the canary's PII leak counter")
		}
		// Nothing Cairn wrote or serves holds a leaked value.
		waitHooks := time.Now().Add(5 * time.Second)
		for {
			if len(s.hooks.received()) > 0 || time.Now().After(waitHooks) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		hooks := s.hooks.received()
		if len(hooks) == 0 {
			t.Error("no webhook arrived")
		} else if !strings.Contains(string(hooks[0]), `"class":"security"`) || !strings.Contains(string(hooks[0]), `"severity":"page"`) {
			t.Errorf("webhook lacks the class or the severity: %s", hooks[0])
		}
		places := map[string]string{
			"incident JSON": string(s.get(t, "/admin/incidents/"+inc.ID)),
			"postmortem":    string(s.get(t, "/admin/incidents/"+inc.ID+"/postmortem")),
			"metrics":       metrics,
			"gateway log":   s.gw.out.String(),
		}
		for i, h := range hooks {
			places[fmt.Sprintf("webhook %d", i)] = string(h)
		}
		filepath.Walk(s.dataDir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				b, _ := os.ReadFile(p)
				places[p] = string(b)
			}
			return nil
		})
		if !strings.Contains(places["postmortem"], "security") {
			t.Errorf("postmortem does not say the class")
		}
		for where, text := range places {
			for _, v := range []string{loadtest.MockLeakedEmail, loadtest.MockLeakedPhone, "555 0142", "4155550142"} {
				if strings.Contains(text, v) {
					t.Errorf("%s holds the leaked value %q", where, v)
				}
			}
		}
	})
	t.Run("refusal_rate", func(t *testing.T) {
		s := startGuardStack(t)
		inc := runGuardSignal(t, s, `{"refuse":true,"variant":-1}`, "refusal_rate")
		if inc.Class != "" {
			t.Errorf("class %q; want none", inc.Class)
		}
		if m := string(s.get(t, "/metrics")); !strings.Contains(m, `cairn_refusals_total{route="support-bot",cohort="canary"`) {
			t.Error("metrics lack the canary's refusal counter")
		}
	})
}
