package main

// Mitigations that hold (issue 17), tried with real `cairn serve`
// processes, one real Redis and the mock provider in this process (its
// per-model request counts and last request bodies are the evidence).

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/cairnhq/cairn/loadtest"
)

// overridesFleetConfig: %[4]s the mock, %[5]s the Redis line.
const overridesFleetConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
%[5]s
providers:
  - { name: mock, base_url: "http://%[4]s/v1", timeout: 5s }
routes:
  - name: support-bot
    sticky: user
    prompt: { version: v17, system: "You are v17." }
    targets:
      - { provider: mock, model: stable-model, weight: 50 }
      - { provider: mock, model: canary-model, weight: 50, cohort: canary }
detection: { disabled: true }
`

func startInProcMock(t *testing.T) (*loadtest.Mock, string) {
	t.Helper()
	m := loadtest.NewMock(loadtest.MockOptions{RequestIDPrefix: "ov"})
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, addr
}

func startFleet(t *testing.T, n int, mock, redisURL string) []*relGateway {
	t.Helper()
	line := ""
	if redisURL != "" {
		line = "redis_url: " + redisURL
	}
	cfg := strings.NewReplacer("%[4]s", mock, "%[5]s", line).Replace(overridesFleetConfig)
	gs := make([]*relGateway, n)
	for i := range gs {
		gs[i] = startRelGateway(t, cfg)
	}
	return gs
}

func adminDo(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, b
}

type routeStateDoc struct {
	Prompt     struct{ Version, System string } `json:"prompt"`
	RolledBack []string                         `json:"rolled_back"`
	Overrides  []struct {
		What, Cohort, Source, Actor, Incident string
	} `json:"overrides"`
}

func routeState(t *testing.T, g *relGateway) routeStateDoc {
	t.Helper()
	_, b := adminDo(t, "GET", g.admin+"/admin/state", "")
	var st struct{ Routes []routeStateDoc }
	if err := json.Unmarshal(b, &st); err != nil || len(st.Routes) == 0 {
		t.Fatalf("state: %v %s", err, b)
	}
	return st.Routes[0]
}

// waitState polls every 10ms until ok holds on g, and returns how long it
// took; it fails the test past limit.
func waitState(t *testing.T, g *relGateway, limit time.Duration, what string, ok func(routeStateDoc) bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		if ok(routeState(t, g)) {
			return time.Since(t0)
		}
		if time.Since(t0) > limit {
			t.Fatalf("%s: not within %v on %s", what, limit, g.admin)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendSpread sends n requests with distinct users to each gateway.
func sendSpread(t *testing.T, gs []*relGateway, n int, tag string) {
	t.Helper()
	var wg sync.WaitGroup
	for gi, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				r := postChat(g.api, "", chatBody("support-bot", fmt.Sprintf(`"user":"%s-%d-%d"`, tag, gi, i)))
				if r.err != nil || r.status != 200 {
					t.Errorf("request to %s = %d %v %s", g.api, r.status, r.err, r.body)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func rolledBack(cohort string) func(routeStateDoc) bool {
	return func(s routeStateDoc) bool { return slices.Contains(s.RolledBack, cohort) }
}

// A rollback made on replica A stops B and C sending to the cohort within
// 1 s; a replica killed and restarted after it serves the cohort nothing;
// a reload of the same file keeps it; a reload that changes the route's
// targets clears it for the fleet, with an audit entry saying so.
func TestOverridesFleetRollback(t *testing.T) {
	rs := redistest.Start(t)
	m, mock := startInProcMock(t)
	gs := startFleet(t, 3, mock, rs.URL())
	a, b, c := gs[0], gs[1], gs[2]
	sendSpread(t, gs, 40, "warm")
	if m.ModelCounts()["canary-model"] == 0 {
		t.Fatal("no request reached the canary before the rollback")
	}

	code, body := adminDo(t, "POST", a.admin+"/admin/routes/support-bot/rollback", `{"cohort":"canary","reason":"drill","actor":"alice"}`)
	if code != 200 {
		t.Fatalf("rollback on A = %d %s", code, body)
	}
	for _, g := range []*relGateway{b, c} {
		took := waitState(t, g, time.Second, "B and C apply A's rollback", rolledBack("canary"))
		t.Logf("figure: rollback on A applied on %s after %v", g.admin, took)
	}
	canary := m.ModelCounts()["canary-model"]
	sendSpread(t, gs, 60, "after")
	if n := m.ModelCounts()["canary-model"] - canary; n != 0 {
		t.Errorf("the canary got %d requests across the fleet after the rollback", n)
	}
	if st := routeState(t, b); len(st.Overrides) != 1 || st.Overrides[0].Actor != "alice" || st.Overrides[0].Source != "rollback:manual" {
		t.Errorf("B's override = %+v", st.Overrides)
	}

	// B is killed and restarts: ready means the rollback is applied.
	if err := b.gw.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.gw.wait()
	b.start(t)
	sendSpread(t, []*relGateway{b}, 100, "restart")
	if n := m.ModelCounts()["canary-model"] - canary; n != 0 {
		t.Errorf("the restarted replica sent %d requests to the rolled-back canary", n)
	}

	// A reload of the same file keeps the override.
	if code, body := adminDo(t, "POST", b.admin+"/admin/reload", ""); code != 200 {
		t.Fatalf("reload B = %d %s", code, body)
	}
	sendSpread(t, gs, 30, "reload")
	if n := m.ModelCounts()["canary-model"] - canary; n != 0 {
		t.Errorf("the canary got %d requests after a reload of the same file", n)
	}

	// A reload that changes the route's targets clears it, fleet-wide.
	cfg, _ := os.ReadFile(a.cfgPath)
	if err := os.WriteFile(a.cfgPath, []byte(strings.Replace(string(cfg), "model: canary-model", "model: canary-model-2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := adminDo(t, "POST", a.admin+"/admin/reload", ""); code != 200 {
		t.Fatalf("reload A = %d %s", code, body)
	}
	if st := routeState(t, a); len(st.Overrides) != 0 || len(st.RolledBack) != 0 {
		t.Errorf("A kept the override across a reload that changed the targets: %+v", st)
	}
	for _, g := range []*relGateway{b, c} {
		waitState(t, g, time.Second, "the cleared override leaves B and C", func(s routeStateDoc) bool { return len(s.RolledBack) == 0 })
	}
	_, audit := adminDo(t, "GET", a.admin+"/admin/audit", "")
	if !strings.Contains(string(audit), "override:cleared") || !strings.Contains(string(audit), "changed the route's targets") {
		t.Errorf("A's audit does not say the reload cleared the override: %s", audit)
	}
}

// Without Redis, the override lives in data_dir: a restart keeps it.
func TestOverridesRestartWithoutRedis(t *testing.T) {
	m, mock := startInProcMock(t)
	g := startFleet(t, 1, mock, "")[0]
	if code, body := adminDo(t, "POST", g.admin+"/admin/routes/support-bot/rollback", `{"cohort":"canary"}`); code != 200 {
		t.Fatalf("rollback = %d %s", code, body)
	}
	if err := g.gw.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = g.gw.wait()
	g.start(t)
	if st := routeState(t, g); !slices.Contains(st.RolledBack, "canary") || len(st.Overrides) != 1 {
		t.Fatalf("state after restart = %+v; want canary rolled back by an override", st)
	}
	sendSpread(t, []*relGateway{g}, 100, "restart")
	if n := m.ModelCounts()["canary-model"]; n != 0 {
		t.Errorf("the canary got %d requests after a restart", n)
	}
}

// A prompt revert on one replica makes the upstream receive v17's system
// text from every replica.
func TestOverridesPromptRevertFleet(t *testing.T) {
	rs := redistest.Start(t)
	m, mock := startInProcMock(t)
	gs := startFleet(t, 3, mock, rs.URL())
	for _, g := range gs {
		cfg, _ := os.ReadFile(g.cfgPath)
		next := strings.Replace(string(cfg), `version: v17, system: "You are v17."`, `version: v18, system: "You are v18."`, 1)
		if err := os.WriteFile(g.cfgPath, []byte(next), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, body := adminDo(t, "POST", g.admin+"/admin/reload", ""); code != 200 {
			t.Fatalf("reload = %d %s", code, body)
		}
	}
	if code, body := adminDo(t, "POST", gs[0].admin+"/admin/routes/support-bot/prompt/revert", `{"to":"v17","reason":"scores dropped"}`); code != 200 {
		t.Fatalf("revert = %d %s", code, body)
	}
	for _, g := range gs {
		waitState(t, g, time.Second, "every replica serves v17", func(s routeStateDoc) bool { return s.Prompt.Version == "v17" })
	}
	for i, g := range gs {
		for _, model := range []string{"stable-model", "canary-model"} {
			// One request per model, checked at the mock before the next.
			for u := 0; ; u++ {
				before := m.ModelCounts()[model]
				r := postChat(g.api, "", chatBody("support-bot", fmt.Sprintf(`"user":"p%d-%s-%d"`, i, model, u)))
				if r.status != 200 {
					t.Fatalf("request = %d %s", r.status, r.body)
				}
				if m.ModelCounts()[model] == before {
					continue
				}
				if _, body := m.LastRequestFor(model); !strings.Contains(string(body), "You are v17.") || strings.Contains(string(body), "v18") {
					t.Errorf("replica %d sent %s: %s", i, model, body)
				}
				break
			}
		}
	}
}
