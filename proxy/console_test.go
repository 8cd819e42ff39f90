package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/loadtest"
)

// Issue 18: the console's files, the chart, manual resolution and the
// signals the overview shows, over the real admin listener.

const consoleConfig = `
data_dir: {{DATA}}
admin_token_env: ADMIN_TOKEN
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: support-bot
    sticky: user
    targets:
      - { provider: mock, model: stable-model, weight: 80 }
      - { provider: mock, model: canary-model, weight: 20, cohort: canary }
    contract: { mode: observe }
`

const consoleAdminToken = "console-test-admin-token"

func consoleGateway(t *testing.T) *testGateway {
	t.Helper()
	_, addr := startMock(t, loadtest.MockOptions{RequestIDPrefix: "cs"})
	tg := startGateway(t, fmt.Sprintf(consoleConfig, addr), map[string]string{"ADMIN_TOKEN": consoleAdminToken})
	for i := range 20 {
		if r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", fmt.Sprintf(`"user":"u%d"`, i))); r.status != 200 {
			t.Fatalf("chat: %d %s", r.status, r.body)
		}
	}
	return tg
}

func TestConsoleFilesWithCSP(t *testing.T) {
	tg := consoleGateway(t)
	tests := []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"GET", "/ui/", 200, "text/html"},
		{"GET", "/ui/app.js", 200, "text/javascript"},
		{"GET", "/ui/markdown.js", 200, "text/javascript"},
		{"GET", "/ui/style.css", 200, "text/css"},
		{"GET", "/ui/icon.svg", 200, "image/svg+xml"},
		{"GET", "/ui/nope.js", 404, ""},
		{"GET", "/ui/sub/app.js", 404, ""},
		{"GET", "/ui/.hidden", 404, ""},
		{"POST", "/ui/", 405, ""},
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, tg.admin+tt.path, nil)
		r, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != tt.status {
			t.Errorf("%s %s = %d; want %d", tt.method, tt.path, r.StatusCode, tt.status)
		}
		if tt.ctype != "" && !strings.HasPrefix(r.Header.Get("Content-Type"), tt.ctype) {
			t.Errorf("%s %s: content-type %q; want %s", tt.method, tt.path, r.Header.Get("Content-Type"), tt.ctype)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("%s %s: CSP %q", tt.method, tt.path, csp)
		}
	}
	r, err := c.Get(tg.admin + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 301 || !strings.HasSuffix(r.Header.Get("Location"), "/ui/") {
		t.Errorf("GET /ui = %d to %q; want 301 to /ui/", r.StatusCode, r.Header.Get("Location"))
	}
	// The files load without the token; the data does not.
	if r := do(t, "GET", tg.admin+"/admin/state", "", ""); r.status != 401 {
		t.Errorf("/admin/state without token = %d; want 401", r.status)
	}
}

func TestConsoleChartResolveSignals(t *testing.T) {
	tg := consoleGateway(t)
	tok := consoleAdminToken
	r := do(t, "POST", tg.admin+"/admin/incidents", tok, `{"route":"support-bot","reason":"canary looks off"}`)
	if r.status != 201 {
		t.Fatalf("declare: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)

	// The chart: one series per cohort of the route, the declaration's markers.
	ch := do(t, "GET", tg.admin+"/admin/incidents/"+id+"/chart.svg", tok, "")
	if ch.status != 200 || !strings.HasPrefix(ch.header.Get("Content-Type"), "image/svg+xml") {
		t.Fatalf("chart.svg: %d %s %s", ch.status, ch.header.Get("Content-Type"), ch.body)
	}
	for _, want := range []string{`data-series="cohort stable"`, `data-series="cohort canary"`, "marker-detection"} {
		if !strings.Contains(string(ch.body), want) {
			t.Errorf("chart lacks %s", want)
		}
	}
	if r := do(t, "GET", tg.admin+"/admin/incidents/"+id+"/chart.svg", "", ""); r.status != 401 {
		t.Errorf("chart.svg without token = %d; want 401", r.status)
	}

	// Signals now, per cohort.
	sg := do(t, "GET", tg.admin+"/admin/signals", tok, "")
	var sigs []struct {
		Route, Cohort, Signal, Verdict string
		Requests                       int64
	}
	if err := json.Unmarshal(sg.body, &sigs); err != nil || sg.status != 200 {
		t.Fatalf("signals: %d %v %s", sg.status, err, sg.body)
	}
	seen := map[string]bool{}
	for _, s := range sigs {
		if s.Route == "support-bot" && s.Signal == "contract_failure_rate" {
			seen[s.Cohort] = true
		}
	}
	if !seen["stable"] || !seen["canary"] {
		t.Errorf("signals lack a cohort's contract_failure_rate: %s", sg.body)
	}

	// Resolve by hand: audited with the actor and the reason, once.
	if r := do(t, "POST", tg.admin+"/admin/incidents/"+id+"/resolve", "", `{}`); r.status != 401 {
		t.Errorf("resolve without token = %d; want 401", r.status)
	}
	if r := do(t, "POST", tg.admin+"/admin/incidents/"+id+"/resolve", tok, `{"reason":`); r.status != 400 {
		t.Errorf("resolve with a broken body = %d; want 400", r.status)
	}
	rs := do(t, "POST", tg.admin+"/admin/incidents/"+id+"/resolve", tok, `{"reason":"false alarm","actor":"dana"}`)
	if rs.status != 200 {
		t.Fatalf("resolve: %d %s", rs.status, rs.body)
	}
	if m := rs.json(t); m["status"] != "resolved" || m["resolution"] != "manual" {
		t.Errorf("resolved incident: status %v, resolution %v", m["status"], m["resolution"])
	}
	if r := do(t, "POST", tg.admin+"/admin/incidents/"+id+"/resolve", tok, `{"reason":"again"}`); r.status != 409 {
		t.Errorf("second resolve = %d; want 409", r.status)
	}
	if r := do(t, "POST", tg.admin+"/admin/incidents/inc_00000000000000000000000000/resolve", tok, `{}`); r.status != 404 {
		t.Errorf("resolve of an unknown incident = %d; want 404", r.status)
	}
	au := do(t, "GET", tg.admin+"/admin/audit", tok, "")
	var entries []struct{ Source, Actor, Reason, Route string }
	json.Unmarshal(au.body, &entries)
	n := 0
	for _, e := range entries {
		if e.Source == "incident:resolve" {
			n++
			if e.Actor != "dana" || !strings.Contains(e.Reason, "false alarm") || !strings.Contains(e.Reason, id) || e.Route != "support-bot" {
				t.Errorf("resolve audit entry = %+v", e)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d incident:resolve audit entries; want 1", n)
	}
	// The list shows it resolved, with the new summary fields.
	ls := do(t, "GET", tg.admin+"/admin/incidents", tok, "")
	var list []map[string]any
	json.Unmarshal(ls.body, &list)
	if len(list) != 1 || list[0]["status"] != "resolved" || list[0]["detected_at"] == nil || list[0]["first_failure_at"] == nil {
		t.Errorf("incident list = %s", ls.body)
	}
}
