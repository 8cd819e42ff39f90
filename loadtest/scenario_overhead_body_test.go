package loadtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestOverheadReportsHop runs `overhead` and its body-size variant in the
// quick profile against the real binary: the bare fasthttp hop is measured
// beside the stdlib proxy with CPU per request, the ratios issue 15 asks
// for are reported, and every body size has a row with CPU per KB.
// Figures are not asserted (quick profile, shared machine).
func TestOverheadReportsHop(t *testing.T) {
	bin := buildCairn(t)
	for _, bodySize := range []bool{false, true} {
		var progress bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		rep, err := Run(ctx, "overhead", Options{Binary: bin, Quick: true, Seconds: 1, Out: &progress, WorkDir: t.TempDir(), BodySize: bodySize})
		cancel()
		if err != nil {
			t.Fatalf("Run(overhead, body-size %v): %v\nprogress:\n%s", bodySize, err, progress.String())
		}
		checkReportShape(t, rep, "overhead")
		for _, c := range rep.Failed(CheckInvariant) {
			t.Errorf("invariant failed: %s = %v (want %s)", c.Name, c.Value, c.Target)
		}
		rows := map[string]map[string]float64{}
		for _, tab := range rep.Tables {
			for _, r := range tab.Rows {
				if rows[r.Name] == nil {
					rows[r.Name] = map[string]float64{}
				}
				for k, v := range r.Values {
					rows[r.Name][k] = v
				}
			}
		}
		var checks []string
		for _, c := range rep.Checks {
			checks = append(checks, c.Name)
		}
		all := strings.Join(checks, "\n")
		if !bodySize {
			for _, name := range []string{"hop", "stdlib-proxy", "cairn", "cairn-all-bodies"} {
				if rows[name]["cpu_peak_us"] <= 0 || rows[name]["peak_rps"] <= 0 {
					t.Errorf("overhead row %s = %v; want peak_rps and cpu_peak_us", name, rows[name])
				}
			}
			for _, want := range []string{"cairn peak throughput / bare fasthttp hop's", "cairn CPU per request / bare fasthttp hop's (at peak)", "cairn added p99 at"} {
				if !strings.Contains(all, want) {
					t.Errorf("overhead checks lack %q:\n%s", want, all)
				}
			}
			continue
		}
		for _, bc := range bodyCases {
			v := rows[bc.name]
			if v["hop_us_kb"] <= 0 || v["cairn_us_kb"] <= 0 || v["ratio"] <= 0 || v["all_ratio"] <= 0 {
				t.Errorf("body-size row %s = %v; want CPU per KB of hop and cairn (bodies sampled, and all kept) and their ratios", bc.name, v)
			}
			// The open loop at the hop's peak rate: every request was
			// recorded by both gateways (lost bodies are a target, not
			// asserted on a shared machine).
			if v["recorded"] < 1 || v["all_recorded"] < 1 || v["lost"] < 0 || v["all_lost"] < 0 {
				t.Errorf("body-size row %s = %v; want records and bodies lost at the hop's peak rate", bc.name, v)
			}
		}
		if !strings.Contains(all, "1 MB request: cairn records losing their bodies at the hop's peak rate") {
			t.Errorf("body-size checks lack the bodies lost at the hop's peak rate:\n%s", all)
		}
		if !strings.Contains(all, "1 MB request: cairn CPU per KB / hop's") {
			t.Errorf("body-size checks lack the 1 MB ratio:\n%s", all)
		}
	}
}
