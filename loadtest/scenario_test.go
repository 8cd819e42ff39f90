package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestScenarios(t *testing.T) {
	table := scenarioTable()
	names := Scenarios()
	if len(names) != len(table) {
		t.Errorf("Scenarios() = %v; the table has %d", names, len(table))
	}
	for _, n := range names {
		if table[n] == nil {
			t.Errorf("scenario %q has no runner", n)
		}
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	tests := []struct {
		name, scenario string
		o              Options
		want           string
	}{
		{"unknown scenario", "nope", Options{Binary: "/bin/sh"}, `unknown scenario "nope"`},
		{"no binary", "overhead", Options{}, "no cairn binary"},
		{"missing binary", "overhead", Options{Binary: "/does/not/exist"}, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.scenario, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run(%q) = %v; want an error containing %q", tt.scenario, err, tt.want)
			}
		})
	}
}

// buildCairn builds ../cmd/cairn into a temporary directory, skipping the
// test when the tree does not compile (other packages are mid-change) or
// in -short mode.
func buildCairn(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("smoke runs start the real binary; skipped in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "cairn")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/cairn").CombinedOutput()
	if err != nil {
		t.Skipf("cmd/cairn does not build; smoke runs skipped:\n%s", out)
	}
	return bin
}

// TestScenarioSmoke runs every scenario in the quick profile against the
// real binary: the report must have its shape and every invariant (no
// request failed, exactly rpm admitted, no failure after the rollback)
// must hold. Performance targets are recorded, not asserted: the quick
// profile is too short and this machine too shared for them.
func TestScenarioSmoke(t *testing.T) {
	bin := buildCairn(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found: install it (apt-get install -y redis-server)")
	}
	for _, sc := range Scenarios() {
		t.Run(sc, func(t *testing.T) {
			var progress bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			// Quick profile with 1 s phases: seconds per scenario.
			rep, err := Run(ctx, sc, Options{Binary: bin, Quick: true, Seconds: 1, Out: &progress, WorkDir: t.TempDir()})
			if err != nil {
				t.Fatalf("Run(%s): %v\nprogress:\n%s", sc, err, progress.String())
			}
			if !strings.Contains(progress.String(), sc+": ") {
				t.Errorf("no progress lines: %q", progress.String())
			}
			checkReportShape(t, rep, sc)
			checkInvariants(t, rep)
			logReportIfFailed(t, rep)
		})
	}
}

// checkReportShape asserts what every scenario's report holds, and that
// its three renderings are well-formed.
func checkReportShape(t *testing.T, rep *Report, scenario string) {
	t.Helper()
	if rep.Scenario != scenario || rep.Profile != "quick" || rep.GoVersion == "" || rep.Commit == "" || rep.Machine.CPUs < 1 {
		t.Errorf("report header = %+v", rep)
	}
	if len(rep.Tables) == 0 || len(rep.Checks) == 0 || len(rep.Charts) == 0 {
		t.Fatalf("report has %d tables, %d checks, %d charts; want each", len(rep.Tables), len(rep.Checks), len(rep.Charts))
	}
	for _, tab := range rep.Tables {
		if len(tab.Rows) == 0 || len(tab.Columns) == 0 {
			t.Errorf("table %q is empty", tab.Title)
		}
	}
	points := 0
	for _, c := range rep.Charts {
		for _, s := range c.Series {
			points += len(s.Points)
		}
	}
	if points == 0 {
		t.Errorf("charts hold no points")
	}
	var js, tb, svg bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Errorf("WriteJSON wrote invalid JSON: %v", err)
	}
	if err := rep.WriteTable(&tb); err != nil {
		t.Fatalf("WriteTable: %v", err)
	}
	for _, tab := range rep.Tables {
		if !strings.Contains(tb.String(), tab.Title) {
			t.Errorf("table text lacks %q", tab.Title)
		}
	}
	if err := rep.WriteSVG(&svg); err != nil {
		t.Fatalf("WriteSVG: %v", err)
	}
	if n := checkSVG(t, svg.Bytes())["polyline"]; n == 0 {
		t.Errorf("SVG has no lines")
	}
}
