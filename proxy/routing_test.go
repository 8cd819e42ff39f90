package proxy

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/loadtest"
)

// canaryConfig's latency signal is out of reach: on a loaded machine the
// two mocks' p99 differ by scheduling noise alone, and a latency rollback
// of the canary moved sticky users mid-test (the tests here are about
// cohorts and contracts).
const canaryConfig = `
data_dir: {{DATA}}
release: "test-2"
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 2s }
  - { name: canary, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: support-bot
    sticky: user
    prompt: { version: %s }
    targets:
      - { provider: primary, model: stable-model, weight: 80 }
      - { provider: canary, model: canary-model, weight: 20, cohort: canary }
    fallbacks:
      - { provider: primary, model: stable-model }
    contract: { mode: %s }
    auto_rollback: true
detection: { window: 5s, min_requests: 10, latency_p99_ratio: 1000 }
`

func canaryGateway(t *testing.T, mode string) (*loadtest.Mock, *loadtest.Mock, *testGateway) {
	t.Helper()
	m1, a1 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "p1"})
	m2, a2 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "p2"})
	tg := startGateway(t, fmt.Sprintf(canaryConfig, a1, a2, "v1", mode), nil)
	return m1, m2, tg
}

func TestStickyCohortsAndSplit(t *testing.T) {
	_, _, tg := canaryGateway(t, "observe")
	const users = 400
	canary := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	cohortOf := map[string]string{}
	for i := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			user := fmt.Sprintf("user-%d", i)
			var first string
			for j := range 3 {
				r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", fmt.Sprintf(`"user":%q`, user)))
				c := r.header.Get("x-cairn-cohort")
				if j == 0 {
					first = c
				} else if c != first {
					t.Errorf("user %s moved from cohort %s to %s", user, first, c)
				}
			}
			mu.Lock()
			cohortOf[user] = first
			if first == "canary" {
				canary++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	share := float64(canary) / users
	if share < 0.13 || share > 0.27 {
		t.Errorf("canary share = %.3f over %d users; want ≈ 0.20", share, users)
	}
	if t.Failed() {
		t.Logf("incidents: %s", do(t, "GET", tg.admin+"/admin/incidents", "", "").body)
	}
}

func TestContractEnforceFallsBack(t *testing.T) {
	m1, m2, tg := canaryGateway(t, "enforce")
	_ = m1
	m2.SetFault("*", loadtest.Fault{BrokenJSON: true})
	// Find a user in the canary cohort.
	for i := range 200 {
		body := chat("support-bot", fmt.Sprintf(`"user":"u%d","response_format":{"type":"json_object"}`, i))
		r := do(t, "POST", tg.api+"/v1/chat/completions", "", body)
		if r.status != 200 {
			t.Fatalf("status = %d: %s", r.status, r.body)
		}
		if m2.Requests() > 0 {
			// The canary answered broken JSON; the client must have got the fallback's.
			if got := r.header.Get("x-cairn-target"); got != "primary/stable-model" {
				t.Errorf("target = %q; want the fallback after a contract failure", got)
			}
			if got := r.header.Get("x-cairn-contract"); got != "pass" {
				t.Errorf("contract = %q; want pass", got)
			}
			return
		}
	}
	t.Fatal("no request reached the canary")
}

func TestContractObserveHeader(t *testing.T) {
	m1, m2, tg := canaryGateway(t, "observe")
	m1.SetFault("*", loadtest.Fault{BrokenJSON: true})
	m2.SetFault("*", loadtest.Fault{BrokenJSON: true})
	r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", `"response_format":{"type":"json_object"}`))
	if r.status != 200 || r.header.Get("x-cairn-contract") != "fail" {
		t.Fatalf("status %d contract %q; want 200 fail", r.status, r.header.Get("x-cairn-contract"))
	}
	rec := tg.records(t, 1)[0]
	if rec.Contract.Verdict != "fail" || len(rec.Contract.Reasons) == 0 || rec.Outcome != "contract_fail" {
		t.Errorf("record contract = %+v outcome %q", rec.Contract, rec.Outcome)
	}
}

func TestManualRollbackAndReloadKeepsIt(t *testing.T) {
	_, m2, tg := canaryGateway(t, "observe")
	r := do(t, "POST", tg.admin+"/admin/routes/support-bot/rollback", "", `{"reason":"test"}`)
	if r.status != 200 {
		t.Fatalf("rollback = %d %s", r.status, r.body)
	}
	before := m2.Requests()
	for i := range 50 {
		do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", fmt.Sprintf(`"user":"u%d"`, i)))
	}
	if m2.Requests() != before {
		t.Errorf("canary got %d requests after rollback", m2.Requests()-before)
	}
	// A reload that changes only the prompt version keeps the rollback.
	b, _ := os.ReadFile(tg.cfgPath)
	if err := os.WriteFile(tg.cfgPath, []byte(strings.Replace(string(b), "version: v1", "version: v2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = do(t, "POST", tg.admin+"/admin/reload", "", "")
	if r.status != 200 {
		t.Fatalf("reload = %d %s", r.status, r.body)
	}
	for i := range 50 {
		do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", fmt.Sprintf(`"user":"u%d"`, i)))
	}
	if m2.Requests() != before {
		t.Errorf("reload re-enabled a rolled-back canary")
	}
	st := do(t, "GET", tg.admin+"/admin/state", "", "")
	if !strings.Contains(string(st.body), `"version": "v2"`) || !strings.Contains(string(st.body), `"rolled_back"`) {
		t.Errorf("state after reload: %s", st.body)
	}
	audit := do(t, "GET", tg.admin+"/admin/audit", "", "")
	for _, want := range []string{"rollback:manual", "admin", "prompt.version"} {
		if !strings.Contains(string(audit.body), want) {
			t.Errorf("audit lacks %q: %s", want, audit.body)
		}
	}
	// A bad file is refused and the running config stays.
	if err := os.WriteFile(tg.cfgPath, []byte("routes: [ {name: x, wieght: 1} ]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = do(t, "POST", tg.admin+"/admin/reload", "", "")
	if r.status != 422 || !strings.Contains(string(r.body), "wieght") {
		t.Errorf("bad reload = %d %s", r.status, r.body)
	}
	if r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", "")); r.status != 200 {
		t.Errorf("after a refused reload status = %d", r.status)
	}
}

func TestShutdownDrainsStream(t *testing.T) {
	m1, m2, tg := canaryGateway(t, "observe")
	m1.SetFault("*", loadtest.Fault{SlowChunks: 100 * time.Millisecond})
	m2.SetFault("*", loadtest.Fault{SlowChunks: 100 * time.Millisecond})
	res := make(chan result, 1)
	go func() {
		res <- do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", `"stream":true,"user":"stable-user-1"`))
	}()
	time.Sleep(300 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- tg.Shutdown(t.Context()) }()
	r := <-res
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, ok := readSSE(t, r); !ok {
		t.Errorf("stream in flight did not finish during drain: %s", r.body)
	}
}
