package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPostmortemOut: `cairn incidents postmortem ID --out DIR` writes the
// Markdown and the chart beside it, from the data directory and from a
// running gateway; the Markdown embeds the chart and keeps the samples'
// JSON out (issue 18).
func TestPostmortemOut(t *testing.T) {
	s := startConsoleStack(t)
	// The CLI reads the disk: wait until the incident and the records of
	// its failure are written there (capture flushes every 100 ms).
	waitDisk := time.Now().Add(startupWait)
	for {
		_, ierr := os.Stat(filepath.Join(s.dataDir, "incidents", s.incident+".json"))
		caps, _ := filepath.Glob(filepath.Join(s.dataDir, "capture", "capture-*.jsonl"))
		n := 0
		for _, f := range caps {
			b, _ := os.ReadFile(f)
			n += strings.Count(string(b), `"cohort":"canary"`)
		}
		if ierr == nil && n >= 10 {
			break
		}
		if time.Now().After(waitDisk) {
			t.Fatalf("incident file: %v; %d canary records on disk", ierr, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, src := range [][]string{
		{"--data-dir", s.dataDir},
		{"--admin", s.admin, "--admin-token", consoleToken},
	} {
		t.Run(src[0], func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pm")
			args := append([]string{"incidents", "postmortem", s.incident, "--out", dir}, src...)
			out, err := exec.Command(cairnBin, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			md, err := os.ReadFile(filepath.Join(dir, s.incident+".md"))
			if err != nil {
				t.Fatal(err)
			}
			svg, err := os.ReadFile(filepath.Join(dir, s.incident+".svg"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), s.incident+".md") || !strings.Contains(string(out), s.incident+".svg") {
				t.Errorf("output does not name the files: %s", out)
			}
			if want := "](" + s.incident + ".svg)"; !strings.Contains(string(md), want) || !strings.Contains(string(md), "![") {
				t.Errorf("the Markdown does not embed the chart (%s)", want)
			}
			for _, bad := range []string{"```json", `"gateway_request_id"`, `"response":`} {
				if strings.Contains(string(md), bad) {
					t.Errorf("the Markdown holds sample JSON (%q)", bad)
				}
			}
			for _, want := range []string{"cairn incidents samples " + s.incident, "/ui/#/incidents/" + s.incident, "## Timeline chart"} {
				if !strings.Contains(string(md), want) {
					t.Errorf("the Markdown lacks %q", want)
				}
			}
			dec := xml.NewDecoder(bytes.NewReader(svg))
			for {
				if _, err := dec.Token(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("chart is not XML: %v", err)
				}
			}
			for _, want := range []string{`data-series="cohort stable"`, `data-series="cohort canary (failing)"`, "marker-change", "marker-first_failure", "marker-detection", `class="rule"`} {
				if !strings.Contains(string(svg), want) {
					t.Errorf("chart lacks %s:\n%.600s", want, svg)
				}
			}
		})
	}
	// --out belongs to postmortem alone.
	if out, err := exec.Command(cairnBin, "incidents", "list", "--out", t.TempDir(), "--data-dir", s.dataDir).CombinedOutput(); err == nil {
		t.Errorf("incidents list --out succeeded: %s", out)
	}
}
