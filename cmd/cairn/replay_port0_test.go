package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A config that listens on port 0 does not say where the gateway is:
// `cairn replay --config` says so and names the flags that do (before, it
// dialed 127.0.0.1:0 and reported a connection error per sample).
func TestReplayConfigOnPortZero(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cairn.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(rigConfig, anyPort, anyPort, filepath.Join(dir, "data"), deadAddr(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	fix := filepath.Join(dir, "fixtures.jsonl")
	if err := os.WriteFile(fix, []byte(`{"request":{"model":"support-bot","messages":[{"role":"user","content":"hi"}]}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCairn(t, nil, "replay", fix, "--route", "support-bot", "--config", cfgPath)
	if code != 2 || !strings.Contains(stderr, "port 0") || !strings.Contains(stderr, "--admin") {
		t.Errorf("replay --config with listen port 0: exit %d; want 2 naming port 0 and --admin\n%s", code, stderr)
	}
}
