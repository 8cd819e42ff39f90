package main

// Issue 14.6 as the issue writes the command: `cairn replay FILE --admin
// URL --route R` replays the samples through the gateway behind that admin
// URL (found in /admin/state) and exits 1 while its answers break the
// contract, 0 once they satisfy it. The real binary, mock providers as
// separate processes.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplayThroughAdminURL(t *testing.T) {
	good, bad := startMockProc(t, "agood"), startMockProc(t, "abad")
	schema, _ := os.ReadFile(filepath.Join("..", "..", "configs", "schemas", "refund.json"))
	g := startRelGateway(t, fmt.Sprintf(replayConfig, "%[1]s", "%[2]s", "%[3]s", good, bad), relEnv("REPLAY_APP_KEY=app-key"),
		relPrep(func(dir string) { os.WriteFile(filepath.Join(dir, "refund.json"), schema, 0o600) }))

	// Two recorded samples, as `cairn incidents samples` writes them.
	fix := filepath.Join(t.TempDir(), "fixtures.jsonl")
	var lines string
	for i := range 2 {
		lines += fmt.Sprintf(`{"gateway_request_id":"req_sample%d","endpoint":"chat.completions","route":"support-bot","params":{"stream":false,"response_format":"json_object"},"request":[{"role":"user","content":"refund order %d for [EMAIL]"}]}`+"\n", i, i)
	}
	if err := os.WriteFile(fix, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	replay := func() (string, string, int) {
		return runCairn(t, []string{"CAIRN_API_KEY=app-key"}, "replay", fix, "--admin", g.admin, "--route", "support-bot")
	}

	out, stderr, code := replay()
	if code != 0 || strings.Count(out, "\nPASS ") != 2 || !strings.Contains(out, "gateway contract verdict pass") || !strings.Contains(out, "req_") {
		t.Errorf("replay --admin through a healthy gateway: exit %d; want 0 with 2 PASS rows\n%s%s", code, out, stderr)
	}
	if want := "replaying 2 samples to " + g.api; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q; want %q (the API address /admin/state names)", stderr, want)
	}
	// Every target now breaks the contract: the same command fails.
	for _, m := range []string{good, bad} {
		setFault(t, m, `{"model":"*","fault":{"broken_json":true}}`)
	}
	out, stderr, code = replay()
	if code != 1 || strings.Count(out, "\nFAIL ") != 2 || !strings.Contains(out, "gateway contract verdict fail") {
		t.Errorf("replay --admin through a gateway that breaks the contract: exit %d; want 1 with 2 FAIL rows\n%s%s", code, out, stderr)
	}
	// An admin URL where no gateway answers is not a passing test.
	_, stderr, code = runCairn(t, nil, "replay", fix, "--admin", "http://"+deadAddr(t), "--route", "support-bot")
	if code == 0 || !strings.Contains(stderr, "find the gateway through --admin") {
		t.Errorf("replay --admin with nothing listening: exit %d; want non-zero naming --admin\n%s", code, stderr)
	}
}
