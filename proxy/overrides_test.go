package proxy

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/loadtest"
)

const overridesConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: support-bot
    sticky: user
    prompt: { version: %s, system: %q }
    targets:
      - { provider: mock, model: stable-model, weight: 60 }
      - { provider: mock, model: canary-model, weight: 20, cohort: canary }
      - { provider: mock, model: beta-model, weight: 20, cohort: beta }
detection: { disabled: true }
`

func overridesGateway(t *testing.T, version, system string) (*loadtest.Mock, string, *testGateway) {
	t.Helper()
	m, addr := startMock(t, loadtest.MockOptions{RequestIDPrefix: "ov"})
	return m, addr, startGateway(t, fmt.Sprintf(overridesConfig, addr, version, system), nil)
}

func rewriteConfig(t *testing.T, tg *testGateway, from, to string) {
	t.Helper()
	b, err := os.ReadFile(tg.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), from) {
		t.Fatalf("config has no %q", from)
	}
	if err := os.WriteFile(tg.cfgPath, []byte(strings.Replace(string(b), from, to, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A reload racing a rollback never undoes it (issue 17): before, the
// reload built its table from the state it read first and stored it over a
// rollback made in between. Thousands of rounds, each with a reload of the
// same file running while the cohort is rolled back.
func TestOverridesReloadRollbackRace(t *testing.T) {
	_, _, tg := overridesGateway(t, "v1", "be brief")
	const rounds = 2000
	for i := range rounds {
		cohort := []string{"canary", "beta"}[i%2]
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			if _, _, err := tg.Reload("race"); err != nil {
				t.Errorf("round %d: reload: %v", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			if _, _, err := tg.live.Rollback("support-bot", cohort); err != nil {
				t.Errorf("round %d: rollback: %v", i, err)
			}
		}()
		close(start)
		wg.Wait()
		st := tg.live.Load().State()
		if got := st.Route("support-bot").RolledBack; len(got) != 1 || got[0] != cohort {
			t.Fatalf("round %d: after a reload raced the rollback of %s, rolled back = %v", i, cohort, got)
		}
		if _, _, _, err := tg.live.Restore("support-bot", configs.OverrideCohort, cohort); err != nil {
			t.Fatalf("round %d: restore: %v", i, err)
		}
	}
}

// The admin rollback is an override: named, audited, shown in the state
// beside the configured weights, kept by a reload of the same file,
// cleared by hand with restore, and cleared (audited) by a reload that
// changes the route's targets.
func TestOverridesAdminRollbackRestoreReload(t *testing.T) {
	m, _, tg := overridesGateway(t, "v1", "be brief")
	r := do(t, "POST", tg.admin+"/admin/routes/support-bot/rollback", "", `{"cohort":"canary","reason":"bad canary, mail bob@example.com","actor":"alice"}`)
	if r.status != 200 {
		t.Fatalf("rollback = %d %s", r.status, r.body)
	}
	st := do(t, "GET", tg.admin+"/admin/state", "", "").body
	ov := gjson.GetBytes(st, `routes.0.overrides.0`)
	if ov.Get("what").Str != "cohort" || ov.Get("cohort").Str != "canary" || ov.Get("actor").Str != "alice" ||
		ov.Get("source").Str != "rollback:manual" || ov.Get("at").Str == "" || ov.Get("basis").Str == "" {
		t.Errorf("state override = %s", ov.Raw)
	}
	if strings.Contains(string(st), "bob@example.com") {
		t.Errorf("state holds the unmasked email: %s", st)
	}
	if w := gjson.GetBytes(st, `routes.0.targets.#(cohort=="canary").configured_weight`).Int(); w != 20 {
		t.Errorf("configured weight of canary = %d; want 20", w)
	}
	// An incident declared now freezes the override in its snapshot.
	inc := do(t, "POST", tg.admin+"/admin/incidents", "", `{"route":"support-bot","reason":"check"}`)
	if o := gjson.GetBytes(inc.body, "state.routes.0.overrides.0"); inc.status != 201 || o.Get("cohort").Str != "canary" || o.Get("actor").Str != "alice" {
		t.Errorf("incident snapshot overrides = %d %s", inc.status, o.Raw)
	}
	if m := string(do(t, "GET", tg.admin+"/metrics", "", "").body); !strings.Contains(m, "cairn_overrides 1\n") || !strings.Contains(m, "cairn_overrides_pending 0\n") {
		t.Errorf("metrics lack the override gauges")
	}
	// Reload of the same file keeps it.
	if _, _, err := tg.Reload("test"); err != nil {
		t.Fatal(err)
	}
	sendUsers(t, tg, 60)
	if n := m.ModelCounts()["canary-model"]; n != 0 {
		t.Errorf("canary got %d requests after rollback and a reload of the same file", n)
	}
	// Restore by hand: 400 without what, 404 for what is not overridden.
	if r := do(t, "POST", tg.admin+"/admin/routes/support-bot/restore", "", `{"what":"prompt"}`); r.status != 404 {
		t.Errorf("restore of a missing prompt override = %d %s; want 404", r.status, r.body)
	}
	if r := do(t, "POST", tg.admin+"/admin/routes/support-bot/restore", "", `{"what":"weights"}`); r.status != 400 {
		t.Errorf("restore what=weights = %d %s; want 400", r.status, r.body)
	}
	if r := do(t, "POST", tg.admin+"/admin/routes/nope/restore", "", `{"what":"prompt"}`); r.status != 404 {
		t.Errorf("restore on an unknown route = %d; want 404", r.status)
	}
	r = do(t, "POST", tg.admin+"/admin/routes/support-bot/restore", "", `{"what":"cohort","cohort":"canary","reason":"fixed"}`)
	if r.status != 200 {
		t.Fatalf("restore = %d %s", r.status, r.body)
	}
	sendUsers(t, tg, 100)
	if n := m.ModelCounts()["canary-model"]; n == 0 {
		t.Errorf("canary got nothing after restore")
	}
	// Roll back again, then change the route's targets: the override goes,
	// and the audit says so.
	if r := do(t, "POST", tg.admin+"/admin/routes/support-bot/rollback", "", `{"cohort":"canary"}`); r.status != 200 {
		t.Fatalf("rollback = %d %s", r.status, r.body)
	}
	rewriteConfig(t, tg, "model: canary-model, weight: 20", "model: canary-model-2, weight: 20")
	if _, _, err := tg.Reload("test"); err != nil {
		t.Fatal(err)
	}
	st = do(t, "GET", tg.admin+"/admin/state", "", "").body
	if ovs := gjson.GetBytes(st, `routes.0.overrides`); ovs.Exists() && len(ovs.Array()) > 0 {
		t.Errorf("override kept across a reload that changed the targets: %s", ovs.Raw)
	}
	audit := string(do(t, "GET", tg.admin+"/admin/audit", "", "").body)
	for _, want := range []string{"override:restore", "override:cleared", "changed the route's targets"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %q", want)
		}
	}
}

func sendUsers(t *testing.T, tg *testGateway, n int) {
	t.Helper()
	for i := range n {
		if r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", fmt.Sprintf(`"user":"u%d"`, i))); r.status != 200 {
			t.Fatalf("request %d = %d %s", i, r.status, r.body)
		}
	}
}

// The prompt registry lists every version served; a revert installs an
// override that the upstream sees; an unknown version is a 409.
func TestOverridesPromptRevert(t *testing.T) {
	m, _, tg := overridesGateway(t, "v17", "You are v17.")
	rewriteConfig(t, tg, `version: v17, system: "You are v17."`, `version: v18, system: "You are v18."`)
	if _, _, err := tg.Reload("test"); err != nil {
		t.Fatal(err)
	}
	sendUsers(t, tg, 1)
	if _, body := m.LastRequestFor("stable-model"); !strings.Contains(string(body), "You are v18.") {
		t.Fatalf("upstream body before revert: %s", body)
	}
	r := do(t, "GET", tg.admin+"/admin/routes/support-bot/prompts", "", "")
	var list struct {
		Live     string `json:"live"`
		Versions []struct {
			Version, System, SHA256 string
			Live                    bool
		} `json:"versions"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Versions) != 2 || list.Live != "v18" {
		t.Fatalf("prompts = %d %s", r.status, r.body)
	}
	if v := list.Versions[0]; v.Version != "v17" || v.System != "You are v17." || len(v.SHA256) != 64 || v.Live {
		t.Errorf("first version = %+v", v)
	}
	if r := do(t, "POST", tg.admin+"/admin/routes/support-bot/prompt/revert", "", `{"to":"v99"}`); r.status != 409 || !strings.Contains(string(r.body), "never served") {
		t.Errorf("revert to v99 = %d %s; want 409 never served", r.status, r.body)
	}
	r = do(t, "POST", tg.admin+"/admin/routes/support-bot/prompt/revert", "", `{"reason":"scores dropped"}`)
	if r.status != 200 || gjson.GetBytes(r.body, "to").Str != "v17" {
		t.Fatalf("revert = %d %s", r.status, r.body)
	}
	sendUsers(t, tg, 20)
	for _, model := range []string{"stable-model", "canary-model", "beta-model"} {
		if _, body := m.LastRequestFor(model); body != nil && !strings.Contains(string(body), "You are v17.") {
			t.Errorf("%s got after revert: %s", model, body)
		}
	}
	st := do(t, "GET", tg.admin+"/admin/state", "", "").body
	if gjson.GetBytes(st, "routes.0.prompt.version").Str != "v17" || gjson.GetBytes(st, "routes.0.configured_prompt.version").Str != "v18" {
		t.Errorf("state prompt after revert: %s", gjson.GetBytes(st, "routes.0").Raw)
	}
	// Reverting again to what is served is a conflict, not a second override.
	if r := do(t, "POST", tg.admin+"/admin/routes/support-bot/prompt/revert", "", `{"to":"v17"}`); r.status != 409 {
		t.Errorf("second revert to v17 = %d %s; want 409", r.status, r.body)
	}
	// A reload that changes the prompt clears the revert.
	rewriteConfig(t, tg, `version: v18, system: "You are v18."`, `version: v19, system: "You are v19."`)
	if _, _, err := tg.Reload("test"); err != nil {
		t.Fatal(err)
	}
	sendUsers(t, tg, 1)
	if _, body := m.LastRequestFor("stable-model"); !strings.Contains(string(body), "You are v19.") {
		t.Errorf("upstream body after a reload changed the prompt: %s", body)
	}
}

// Without Redis the prompt registry lives in data_dir: a restarted gateway
// still knows the versions it served and can revert to one.
func TestOverridesPromptRegistryAcrossRestart(t *testing.T) {
	_, addr := startMock(t, loadtest.MockOptions{RequestIDPrefix: "pr"})
	tg := startGateway(t, fmt.Sprintf(overridesConfig, addr, "v17", "You are v17."), nil)
	rewriteConfig(t, tg, `version: v17, system: "You are v17."`, `version: v18, system: "You are v18."`)
	if _, _, err := tg.Reload("test"); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(tg.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The same data_dir, read by a new gateway.
	again := startGateway(t, string(cfg), nil)
	r := do(t, "GET", again.admin+"/admin/routes/support-bot/prompts", "", "")
	if vs := gjson.GetBytes(r.body, "versions.#.version").Array(); len(vs) != 2 || vs[0].Str != "v17" || vs[1].Str != "v18" {
		t.Fatalf("prompts after restart = %s", r.body)
	}
	if r := do(t, "POST", again.admin+"/admin/routes/support-bot/prompt/revert", "", `{"to":"v17"}`); r.status != 200 {
		t.Errorf("revert after restart = %d %s", r.status, r.body)
	}
}
