package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, cairnBin, "demo", "--data-dir", dir).CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("cairn demo: %v\n%s", err, out)
	}
	t.Logf("demo took %v:\n%s", elapsed, out)
	if elapsed > 30*time.Second {
		t.Errorf("demo took %v; the promise is 30 s", elapsed)
	}
	text := string(out)
	for _, want := range []string{"incident inc_", "rollback: canary weight 20 -> 0", "after the rollback:", "postmortem draft:"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`after the rollback: \d+ requests, 0 failed`).MatchString(text) {
		t.Errorf("requests failed after the rollback")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "incidents", "inc_*.json"))
	if len(files) != 1 {
		t.Fatalf("incident files = %v; want exactly one", files)
	}
	id := strings.TrimSuffix(filepath.Base(files[0]), ".json")
	pm, err := exec.Command(cairnBin, "incidents", "postmortem", id, "--data-dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("cairn incidents postmortem: %v\n%s", err, pm)
	}
	for _, section := range []string{"## Summary", "## Timeline (UTC)", "## Impact and scope", "## Root cause", "## Action items", "## Evidence"} {
		if !strings.Contains(string(pm), section) {
			t.Errorf("postmortem lacks %q", section)
		}
	}
	show, err := exec.Command(cairnBin, "incidents", "show", id, "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(show), "frozen hash verified") {
		t.Errorf("incidents show: %v\n%s", err, show)
	}
	if !strings.Contains(string(show), `"v18"`) {
		t.Errorf("the frozen state lacks the prompt version live at detection (v18)")
	}
	if _, err := os.Stat(filepath.Join(dir, "incidents", id+".postmortem.md")); err != nil {
		t.Errorf("postmortem draft file: %v", err)
	}
	// The samples become contract fixtures that fail the route's contract.
	samples, err := exec.Command(cairnBin, "incidents", "samples", id, "--data-dir", dir).Output()
	if err != nil {
		t.Fatalf("incidents samples: %v", err)
	}
	fix := filepath.Join(t.TempDir(), "fixtures.jsonl")
	os.WriteFile(fix, samples, 0o600)
	ct, err := exec.Command(cairnBin, "contract", "test", fix, "--config", filepath.Join(dir, "demo.yaml"), "--route", "support-bot").CombinedOutput()
	if err == nil || !strings.Contains(string(ct), "FAIL") {
		t.Errorf("contract test on failing samples: err=%v\n%s", err, ct)
	}
}
