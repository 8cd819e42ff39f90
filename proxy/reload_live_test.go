package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/loadtest"
)

const liveReloadBase = `
data_dir: {{DATA}}
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: %s }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: upstream-model } ]
`

func (tg *testGateway) rewrite(t *testing.T, cfg string) {
	t.Helper()
	cfg = strings.ReplaceAll(cfg, "{{DATA}}", filepath.Join(tg.dir, "data"))
	if err := os.WriteFile(tg.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A reload that adds a custom masking pattern applies it to the next
// record (it used to need a restart while the reload answered 200).
func TestReloadAppliesMasking(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{})
	base := fmt.Sprintf(liveReloadBase, up, "5s")
	tg := startGateway(t, base, nil)
	const secret = "ORD-7734-2291"
	body := `{"model":"support-bot","messages":[{"role":"user","content":"where is ` + secret + `"}]}`
	if r := do(t, "POST", tg.api+"/v1/chat/completions", "", body); r.status != 200 {
		t.Fatalf("chat = %d %s", r.status, r.body)
	}
	tg.rewrite(t, base+"masking: { custom: [ { name: order_id, pattern: 'ORD-\\d{4}-\\d{4}' } ] }\n")
	if r := do(t, "POST", tg.admin+"/admin/reload", "", ""); r.status != 200 {
		t.Fatalf("reload = %d %s", r.status, r.body)
	}
	if r := do(t, "POST", tg.api+"/v1/chat/completions", "", body); r.status != 200 {
		t.Fatalf("chat = %d %s", r.status, r.body)
	}
	recs := tg.records(t, 2)
	if !strings.Contains(string(recs[0].Request), secret) {
		t.Errorf("before the reload the value is not masked (no pattern yet); record = %s", recs[0].Request)
	}
	if strings.Contains(string(recs[1].Request), secret) {
		t.Errorf("after the reload the new masking pattern is not applied: %s", recs[1].Request)
	}
}

// A reload changing what the running gateway cannot apply is refused with
// 422 naming each field; the running config stays.
func TestReloadRefusesRestartFields(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{})
	base := fmt.Sprintf(liveReloadBase, up, "5s")
	tg := startGateway(t, base, nil)
	rev := tg.live.Load().Config().Revision
	for _, tt := range []struct{ extra, field string }{
		{"listen: 127.0.0.1:1\n", "listen"},
		{"admin_listen: 127.0.0.1:2\n", "admin_listen"},
		{"redis_url: redis://127.0.0.1:1\n", "redis_url"},
		{"detection: { window: 10s }\n", "detection.window"},
		{"capture: { queue_size: 10 }\n", "capture.queue_size"},
		{"server: { max_concurrency: 5 }\n", "server.max_concurrency"},
	} {
		tg.rewrite(t, base+tt.extra)
		r := do(t, "POST", tg.admin+"/admin/reload", "", "")
		if r.status != 422 || !strings.Contains(string(r.body), tt.field+": changing it needs a restart") {
			t.Errorf("reload changing %s = %d %s; want 422 naming it", tt.field, r.status, r.body)
		}
		if got := tg.live.Load().Config().Revision; got != rev {
			t.Errorf("running revision changed to %s after a refused reload", got)
		}
	}
}

// The audit diff covers provider fields and shows secrets as "changed".
func TestReloadAuditCoversProviders(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{})
	_, up2 := startMock(t, loadtest.MockOptions{})
	env := map[string]string{"UP_KEY": "sk-old-0123456789abcdefghij"}
	t.Setenv("UP_KEY", env["UP_KEY"]) // Reload reads the process environment
	withKey := func(addr, timeout string) string {
		return strings.Replace(fmt.Sprintf(liveReloadBase, addr, timeout), "timeout: "+timeout, "timeout: "+timeout+", api_key_env: UP_KEY", 1)
	}
	tg := startGateway(t, withKey(up, "5s"), env)
	tg.rewrite(t, withKey(up2, "7s"))
	r := do(t, "POST", tg.admin+"/admin/reload", "", "")
	if r.status != 200 {
		t.Fatalf("reload = %d %s", r.status, r.body)
	}
	var entries []struct {
		Source  string           `json:"source"`
		Changes []configs.Change `json:"changes"`
	}
	json.Unmarshal(do(t, "GET", tg.admin+"/admin/audit", "", "").body, &entries)
	last := entries[len(entries)-1]
	got := map[string]string{}
	for _, c := range last.Changes {
		got[c.Path] = fmt.Sprint(c.From, " -> ", c.To)
	}
	for path, want := range map[string]string{
		"providers[primary].base_url": "http://" + up + "/v1 -> http://" + up2 + "/v1",
		"providers[primary].timeout":  "5s -> 7s",
	} {
		if got[path] != want {
			t.Errorf("audit change %s = %q; want %q (all: %v)", path, got[path], want, got)
		}
	}
	// Rotating the provider key shows as changed, never the value.
	t.Setenv("UP_KEY", "sk-new-0123456789abcdefghij")
	_, changes, err := tg.Reload("test")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(changes)
	if !strings.Contains(string(b), `{"path":"providers[primary].api_key","from":"changed","to":"changed"}`) || strings.Contains(string(b), "sk-") {
		t.Errorf("key rotation changes = %s; want api_key changed, no value", b)
	}
}

// Issue 12 item 5: with the admin socket bound off loopback, a reload that
// removes the admin token is refused (it used to turn 401 into 200).
func TestReloadKeepsAdminTokenOffLoopback(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{})
	dir := t.TempDir()
	base := strings.ReplaceAll(fmt.Sprintf(liveReloadBase, up, "5s"), "{{DATA}}", filepath.Join(dir, "data"))
	path := filepath.Join(dir, "cairn.yaml")
	os.WriteFile(path, []byte(base+"admin_token_env: ADMIN_TOKEN\n"), 0o600)
	env := func(k string) (string, bool) {
		if k == "ADMIN_TOKEN" {
			return "admin-secret-token", true
		}
		return "", false
	}
	data, _ := os.ReadFile(path)
	cfg, err := configs.Load(data, configs.Options{Dir: dir, LookupEnv: env})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Path = path
	g, err := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	api, _ := net.Listen("tcp", "127.0.0.1:0")
	admin, err := net.Listen("tcp", "0.0.0.0:0") // bound to every address: not loopback
	if err != nil {
		t.Skipf("cannot bind 0.0.0.0: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(api, admin) }()
	t.Cleanup(func() { g.Shutdown(t.Context()); <-done })
	for !g.started.Load() || g.adminAddr.Load() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	os.WriteFile(path, []byte(base), 0o600) // token removed
	_, _, err = g.Reload("sighup")
	if err == nil || !strings.Contains(err.Error(), "not loopback; it cannot run without a token") {
		t.Fatalf("Reload removing the token off loopback = %v; want refused", err)
	}
	adminURL := "http://127.0.0.1" + admin.Addr().String()[strings.LastIndex(admin.Addr().String(), ":"):]
	if r := do(t, "GET", adminURL+"/admin/state", "", ""); r.status != 401 {
		t.Errorf("GET /admin/state without a token after the refused reload = %d; want 401", r.status)
	}
}
