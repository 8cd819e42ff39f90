package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/loadtest"
)

const autoRevertConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: support-bot
    prompt: { version: v17, system: "Answer in JSON. v17" }
    targets:
      - { provider: mock, model: gpt-x }
    contract: { mode: observe }
    auto_revert_prompt: true
detection: { window: 5s, min_requests: 10, contract_failure_rate: 0.3 }
`

// The playbook's worked example (issue 17): prompt v18 rolled out to 100%
// with no canary makes the model break the contract; Cairn opens an
// incident, reverts the prompt to v17 (the upstream receives v17's text
// again), and the incident shows the change as a unified diff.
func TestAutoRevertPrompt(t *testing.T) {
	m, addr := startMock(t, loadtest.MockOptions{RequestIDPrefix: "ar"})
	m.SetFault(loadtest.SystemFaultPrefix+"v18", loadtest.Fault{BrokenJSON: true})
	tg := startGateway(t, fmt.Sprintf(autoRevertConfig, addr), nil)
	jsonReq := func(i int) result {
		return do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", fmt.Sprintf(`"user":"u%d","response_format":{"type":"json_object"}`, i)))
	}
	for i := range 12 {
		if r := jsonReq(i); r.header.Get("x-cairn-contract") != "pass" {
			t.Fatalf("v17 request %d: contract %q", i, r.header.Get("x-cairn-contract"))
		}
	}
	rewriteConfig(t, tg, `version: v17, system: "Answer in JSON. v17"`, `version: v18, system: "Answer in prose. v18"`)
	if _, _, err := tg.Reload("test"); err != nil {
		t.Fatal(err)
	}
	var reverted bool
	for i := 0; i < 200 && !reverted; i++ {
		jsonReq(100 + i)
		reverted = tg.live.Load().Route("support-bot").Config.Prompt.Version == "v17"
	}
	if !reverted {
		t.Fatalf("the prompt was not reverted; incidents: %s", do(t, "GET", tg.admin+"/admin/incidents", "", "").body)
	}
	r := jsonReq(1000)
	if _, body := m.LastRequestFor("gpt-x"); !strings.Contains(string(body), "Answer in JSON. v17") {
		t.Errorf("upstream got after the revert: %s", body)
	}
	if r.header.Get("x-cairn-contract") != "pass" {
		t.Errorf("contract after the revert = %q", r.header.Get("x-cairn-contract"))
	}
	var inc []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		list := do(t, "GET", tg.admin+"/admin/incidents", "", "").body
		if id := gjson.GetBytes(list, "0.id").Str; id != "" {
			inc = do(t, "GET", tg.admin+"/admin/incidents/"+id, "", "").body
			break
		}
	}
	if inc == nil {
		t.Fatal("no incident")
	}
	if a := gjson.GetBytes(inc, `actions.#(kind=="prompt_revert")`); !a.Get("ok").Bool() || !strings.Contains(a.Get("message").Str, "from v18 to v17") {
		t.Errorf("incident actions: %s", gjson.GetBytes(inc, "actions").Raw)
	}
	if s := gjson.GetBytes(inc, "status").Str; s != "mitigated" && s != "resolved" {
		t.Errorf("incident status = %s", s)
	}
	diff := gjson.GetBytes(inc, `changes.#.changes.#(path=="routes[support-bot].prompt.system").diff`).Array()
	if len(diff) == 0 || !strings.Contains(diff[0].Str, "-Answer in JSON. v17\n+Answer in prose. v18") {
		t.Errorf("incident changes: %s", gjson.GetBytes(inc, "changes").Raw)
	}
	id := gjson.GetBytes(inc, "id").Str
	pm := string(do(t, "GET", tg.admin+"/admin/incidents/"+id+"/postmortem", "", "").body)
	if !strings.Contains(pm, "```diff") || !strings.Contains(pm, "+Answer in prose. v18") {
		t.Errorf("postmortem does not pin the prompt diff:\n%s", pm)
	}
	// The override learns its incident's ID once the incident is open
	// (NoteIncident), a moment after the revert itself.
	var o gjson.Result
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		o = gjson.GetBytes(do(t, "GET", tg.admin+"/admin/state", "", "").body, "routes.0.overrides.0")
		if o.Get("incident").Str != "" {
			break
		}
	}
	if o.Get("what").Str != "prompt" || o.Get("incident").Str != id || o.Get("source").Str != "prompt:revert" {
		t.Errorf("state override = %s; want the prompt revert naming %s", o.Raw, id)
	}
}
