package svgchart

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestNiceAxis(t *testing.T) {
	tests := []struct {
		v         float64
		step, top float64
	}{
		{0, 0.2, 1},
		{-3, 0.2, 1},
		{math.NaN(), 0.2, 1},
		{1, 0.2, 1},
		{7.3, 2, 8},
		{10, 2, 10},
		{55, 10, 60},
		{0.034, 0.01, 0.04},
		{1800, 500, 2000},
	}
	for _, tt := range tests {
		step, top := NiceAxis(tt.v)
		if math.Abs(step-tt.step) > 1e-9 || math.Abs(top-tt.top) > 1e-9 {
			t.Errorf("NiceAxis(%v) = %v, %v; want %v, %v", tt.v, step, top, tt.step, tt.top)
		}
		if n := top / step; n > 10 {
			t.Errorf("NiceAxis(%v): %v ticks; want at most 10", tt.v, n)
		}
	}
}

// TestWriteIsWellFormed draws a chart with a gap, a rule and markers and
// checks the document parses, breaks the line at the gap, labels every
// marker and the rule, and prints clock ticks.
func TestWriteIsWellFormed(t *testing.T) {
	start := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	c := Chart{
		Title: "contract failure rate <by cohort>", YLabel: "%", XLabel: "time (UTC)", Start: start, StyleByGroup: true,
		Series: []Series{
			{Name: "stable", Group: "stable", Points: []Point{{0, 0}, {1, 0}, {2, math.NaN()}, {3, 0}}},
			{Name: "canary", Group: "canary", Points: []Point{{0, 0}, {1, 50}, {2, 100}, {3, 0}}},
		},
		Rules:   []Rule{{V: 10, Label: "threshold 10%"}},
		Markers: []Marker{{T: 1, Label: "first failure", Kind: "first_failure"}, {T: 2.5, Label: "rollback", Kind: "rollback"}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, c, "incident inc_1", "sub & title"); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("svg does not parse: %v\n%s", err, buf.String())
		}
	}
	s := buf.String()
	if n := strings.Count(s, `data-series="stable"`); n != 2 {
		t.Errorf("stable drawn as %d polylines; want 2 (broken at the NaN bucket)", n)
	}
	for _, want := range []string{`class="marker marker-rollback"`, ">first failure<", ">threshold 10%<", ">16:00:00<", `stroke-dasharray="8,4"`, "&lt;by cohort&gt;"} {
		if !strings.Contains(s, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
}
