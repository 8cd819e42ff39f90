package main

// The postmortem's first action item (issue 14.6): replay an incident's
// samples against a target and judge the new answers, so the test fails
// while the target is broken and passes once it is fixed. The real cairn
// binary, mock providers as separate processes.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const replayConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
providers:
  - { name: good, base_url: "http://%[4]s/v1", timeout: 5s }
  - { name: bad, base_url: "http://%[5]s/v1", timeout: 5s }
keys:
  - { name: app, key_env: REPLAY_APP_KEY }
routes:
  - name: support-bot
    prompt: { version: v2, system: "Answer in JSON." }
    sticky: user
    targets:
      - { provider: good, model: gpt-4o-mini, weight: 50 }
      - { provider: bad, model: gpt-4.1-mini, weight: 50, cohort: canary }
    contract: { mode: observe, schema_file: refund.json }
    auto_rollback: true
detection: { window: 5s, min_requests: 5 }
`

// runCairn runs the binary to completion and returns stdout, stderr and
// the exit code.
func runCairn(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestReplayFixedVersusBroken(t *testing.T) {
	good, bad := startMockProc(t, "good"), startMockProc(t, "bad")
	setFault(t, bad, `{"model":"*","fault":{"broken_json":true}}`)
	schema, _ := os.ReadFile(filepath.Join("..", "..", "configs", "schemas", "refund.json"))
	g := startRelGateway(t, fmt.Sprintf(replayConfig, "%[1]s", "%[2]s", "%[3]s", good, bad), relEnv("REPLAY_APP_KEY=app-key"),
		relPrep(func(dir string) { os.WriteFile(filepath.Join(dir, "refund.json"), schema, 0o600) }))

	// Traffic until the canary's contract failures open an incident.
	var id string
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; id == "" && time.Now().Before(deadline); n++ {
		r := postChat(g.api, "app-key", chatBody("support-bot", fmt.Sprintf(`"user":"u%d","response_format":{"type":"json_object"}`, n)))
		if r.err != nil || r.status != 200 {
			t.Fatalf("request %d: %v %d %s", n, r.err, r.status, r.body)
		}
		if n%10 == 9 {
			if ids := listIncidentIDs(t, g.admin); len(ids) > 0 {
				id = ids[0]
			}
		}
	}
	if id == "" {
		t.Fatal("no incident opened")
	}
	// The incident file is written asynchronously; the CLI reads it below.
	for f := filepath.Join(g.dataDir, "incidents", id+".json"); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(f); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written", f)
		}
	}
	out, stderr, code := runCairn(t, nil, "incidents", "samples", id, "--data-dir", g.dataDir)
	if code != 0 || strings.Count(out, "\n") == 0 {
		t.Fatalf("incidents samples: exit %d %s", code, stderr)
	}
	fix := filepath.Join(t.TempDir(), "fixtures.jsonl")
	os.WriteFile(fix, []byte(out), 0o600)
	nSamples := strings.Count(out, "\n")

	// The postmortem's first action item names this command.
	pm, _, _ := runCairn(t, nil, "incidents", "postmortem", id, "--data-dir", g.dataDir)
	if !strings.Contains(pm, "cairn replay fixtures.jsonl --route support-bot") || !strings.Contains(pm, "--target bad/gpt-4.1-mini") {
		t.Errorf("postmortem action items do not use cairn replay:\n%s", pm)
	}

	replay := func(args ...string) (string, string, int) {
		return runCairn(t, []string{"REPLAY_APP_KEY="}, append([]string{"replay", fix, "--route", "support-bot"}, args...)...)
	}
	// The broken target still breaks the contract: exit 1, a FAIL row per sample.
	out, stderr, code = replay("--config", g.cfgPath, "--target", "bad/gpt-4.1-mini")
	if code != 1 || strings.Count(out, "\nFAIL ") != nSamples || !strings.Contains(out, "contract fail") {
		t.Errorf("replay against the broken target: exit %d; want 1 with %d FAIL rows\n%s%s", code, nSamples, out, stderr)
	}
	// Fixed: the same command passes.
	setFault(t, bad, "")
	out, stderr, code = replay("--config", g.cfgPath, "--target", "bad/gpt-4.1-mini")
	if code != 0 || strings.Count(out, "\nPASS ") != nSamples || !strings.Contains(out, fmt.Sprintf("%d samples: %d passed, 0 failed", nSamples, nSamples)) {
		t.Errorf("replay against the fixed target: exit %d; want 0 with %d PASS rows\n%s%s", code, nSamples, out, stderr)
	}
	if !strings.Contains(out, "bad-") {
		t.Errorf("replay table lacks the provider's request IDs:\n%s", out)
	}

	// Through the gateway (the config's listen address), judged by the config's contract.
	out, stderr, code = runCairn(t, []string{"CAIRN_API_KEY=app-key"}, "replay", fix, "--route", "support-bot", "--config", g.boundConfig(t))
	if code != 0 || strings.Count(out, "\nPASS ") != nSamples || !strings.Contains(out, "req_") {
		t.Errorf("replay through the gateway: exit %d\n%s%s", code, out, stderr)
	}
	// Samples straight from the incident, judged by the gateway's own verdict.
	out, stderr, code = runCairn(t, nil, "replay", id, "--data-dir", g.dataDir, "--route", "support-bot", "--gateway", g.api, "--key", "app-key")
	if code != 0 || !strings.Contains(out, "gateway contract verdict pass") {
		t.Errorf("replay of %s through --gateway: exit %d\n%s%s", id, code, out, stderr)
	}
	// The gateway now breaks the contract for everyone: the gateway's verdict fails.
	setFault(t, good, `{"model":"*","fault":{"broken_json":true}}`)
	out, stderr, code = runCairn(t, nil, "replay", id, "--data-dir", g.dataDir, "--route", "support-bot", "--gateway", g.api, "--key", "app-key")
	if code != 1 || !strings.Contains(out, "gateway contract verdict fail") {
		t.Errorf("replay through a gateway that breaks the contract: exit %d; want 1\n%s%s", code, out, stderr)
	}

	// Usage errors are exit 2, not a failed test.
	for _, args := range [][]string{
		{"replay", fix, "--route", "support-bot", "--config", filepath.Join(t.TempDir(), "missing.yaml")},
		{"replay", fix, "--route", "nope", "--config", g.cfgPath},
		{"replay", filepath.Join(t.TempDir(), "missing.jsonl"), "--route", "support-bot", "--gateway", g.api},
		{"replay", fix, "--route", "support-bot"},
		{"replay", fix, "--route", "support-bot", "--target", "bad/gpt-4.1-mini"},
		{"replay", fix, "--route", "support-bot", "--config", g.cfgPath, "--target", "nobody/m"},
		{"contract", "test", fix, "--route", "support-bot", "--config", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		if _, stderr, code := runCairn(t, nil, args...); code != 2 {
			t.Errorf("cairn %s: exit %d; want 2 (usage)\n%s", strings.Join(args, " "), code, stderr)
		}
	}
}

func TestReplayDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080", ":8080": "127.0.0.1:8080", "0.0.0.0:8080": "127.0.0.1:8080",
		"[::]:8080": "127.0.0.1:8080", "gw.internal:80": "gw.internal:80", "[::1]:8080": "[::1]:8080",
	} {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q; want %q", in, got, want)
		}
	}
}
