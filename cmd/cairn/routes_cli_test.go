package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// cairn routes list|prompts|revert|restore|rollback against --admin URL.
func TestRoutesCLI(t *testing.T) {
	_, mock := startInProcMock(t)
	g := startFleet(t, 1, mock, "")[0]
	cfg, _ := os.ReadFile(g.cfgPath)
	next := strings.Replace(string(cfg), `version: v17, system: "You are v17."`, `version: v18, system: "You are v18."`, 1)
	if err := os.WriteFile(g.cfgPath, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := adminDo(t, "POST", g.admin+"/admin/reload", ""); code != 200 {
		t.Fatalf("reload = %d %s", code, body)
	}
	cairn := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(cairnBin, append([]string{"routes"}, args...)...)
		cmd.Env = append(os.Environ(), "USER=alice")
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("cairn routes %v: err %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := cairn(true, "prompts", "support-bot", "--admin", g.admin)
	for _, want := range []string{"v17", "v18", "live", "You are v17."} {
		if !strings.Contains(out, want) {
			t.Errorf("routes prompts lacks %q:\n%s", want, out)
		}
	}
	if out := cairn(false, "revert", "support-bot", "--to", "v99", "--admin", g.admin); !strings.Contains(out, "409") || !strings.Contains(out, "never served") {
		t.Errorf("revert --to v99:\n%s", out)
	}
	if out := cairn(true, "revert", "support-bot", "--admin", g.admin, "--reason", "scores dropped"); !strings.Contains(out, "now serves prompt v17 (was v18)") {
		t.Errorf("revert:\n%s", out)
	}
	out = cairn(true, "list", "--admin", g.admin)
	for _, want := range []string{"v17 (configured v18)", "support-bot/prompt by alice"} {
		if !strings.Contains(out, want) {
			t.Errorf("routes list lacks %q:\n%s", want, out)
		}
	}
	if out := cairn(true, "restore", "support-bot", "--what", "prompt", "--admin", g.admin); !strings.Contains(out, "cleared the override support-bot/prompt") {
		t.Errorf("restore:\n%s", out)
	}
	if out := cairn(true, "rollback", "support-bot", "--cohort", "canary", "--admin", g.admin); !strings.Contains(out, "cohort canary rolled back") {
		t.Errorf("rollback:\n%s", out)
	}
	if out := cairn(true, "list", "--admin", g.admin); !strings.Contains(out, "support-bot/cohort/canary by alice") {
		t.Errorf("list after rollback:\n%s", out)
	}
	if out := cairn(false, "list"); !strings.Contains(out, "--admin") {
		t.Errorf("routes list without --admin:\n%s", out)
	}
}
