package loadtest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleReport is a report with every part filled, including a value that
// cannot be encoded (NaN) and text that needs escaping.
func sampleReport() *Report {
	r := &Report{
		Scenario: "overhead", Profile: "quick",
		Machine:   Machine{CPUs: 2, CPUModel: "Test CPU <fast> & cheap", OS: "linux", Arch: "amd64"},
		GoVersion: "go1.26.8", Commit: "abc1234",
		Started: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
		Params:  map[string]float64{"open_rate_rps": 1000, "rounds": 3},
	}
	tab := Table{
		Title: "latency & throughput",
		Columns: []Column{
			{Key: "peak", Title: "peak", Unit: "rps"},
			{Key: "p99", Title: "p99", Unit: "ms"},
			{Key: "errors", Title: "errors", Unit: "count"},
		},
	}
	tab.add("direct", map[string]float64{"peak": 30000, "p99": 1.25, "errors": 0})
	tab.add("cairn <gw>", map[string]float64{"peak": 12000.4, "p99": math.NaN(), "errors": 2})
	r.Tables = append(r.Tables, tab)
	r.target("peak ratio", ">= 2", 2.5, "x", true)
	r.invariant("requests failed", "= 0", 2, "count", false)
	r.target("unmeasured", "<= 2 s", math.NaN(), "s", true)
	r.note("a note with <angle> brackets & ampersands")
	r.Charts = []Chart{
		{
			Title: "latency <ms>", YLabel: "ms", XLabel: "s",
			Series: []Series{
				{Name: "direct p50", Group: "direct", Dashed: true, Points: []Point{{T: 0.5, V: 1}, {T: 1.5, V: 1.2}, {T: 2.5, V: math.NaN()}}},
				{Name: "direct p99", Group: "direct", Points: []Point{{T: 0.5, V: 3}, {T: 1.5, V: 4}}},
				{Name: "empty"},
			},
			Markers: []Marker{{T: 1, Label: "incident & rollback"}, {T: math.Inf(1), Label: "never"}},
		},
		{Title: "flat zero", Series: []Series{{Name: "zeros", Points: []Point{{T: 0, V: 0}, {T: 1, V: 0}}}}},
	}
	return r
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	r.Charts = r.Charts[1:] // NaN points are not JSON; charts built by scenarios never hold them
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	var got Report
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("WriteJSON wrote invalid JSON: %v\n%s", err, buf.String())
	}
	if got.Scenario != "overhead" || got.Machine.CPUs != 2 || got.Commit != "abc1234" || got.GoVersion != "go1.26.8" {
		t.Errorf("round trip header = %+v", got)
	}
	if _, ok := got.Tables[0].Rows[1].Values["p99"]; ok {
		t.Errorf("a NaN value was encoded: %v", got.Tables[0].Rows[1].Values)
	}
	if got.Tables[0].Rows[1].Values["peak"] != 12000.4 {
		t.Errorf("peak = %v; want 12000.4", got.Tables[0].Rows[1].Values["peak"])
	}
	if n := len(got.Checks); n != 3 {
		t.Fatalf("checks = %d; want 3", n)
	}
	if c := got.Checks[2]; c.Value != -1 || c.Pass {
		t.Errorf("unmeasured check = %+v; want value -1, failed", c)
	}
	if !reflect.DeepEqual(got.Checks, r.Checks) {
		t.Errorf("checks = %+v; want %+v", got.Checks, r.Checks)
	}
	var raw map[string]any
	json.Unmarshal(buf.Bytes(), &raw) //nolint:errcheck // decoded above
	for _, k := range []string{"scenario", "profile", "machine", "go_version", "commit", "started", "params", "tables", "checks", "notes", "charts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
}

func TestReportFailed(t *testing.T) {
	r := sampleReport()
	tests := []struct {
		kind string
		want []string
	}{
		{CheckInvariant, []string{"requests failed"}},
		{CheckTarget, []string{"unmeasured"}},
		{"", []string{"requests failed", "unmeasured"}},
	}
	for _, tt := range tests {
		var got []string
		for _, c := range r.Failed(tt.kind) {
			got = append(got, c.Name)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Failed(%q) = %v; want %v", tt.kind, got, tt.want)
		}
	}
}

func TestReportTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteTable(&buf); err != nil {
		t.Fatalf("WriteTable: %v", err)
	}
	out := buf.String()
	for _, want := range []string{
		"cairn loadtest overhead (quick profile)", "2 CPUs Test CPU", "go1.26.8", "commit abc1234",
		"params: open_rate_rps=1000 rounds=3",
		"latency & throughput", "peak (rps)", "p99 (ms)", "30000", "12000", "1.25",
		"PASS  target     peak ratio: 2.5 x (want >= 2)",
		"FAIL  invariant  requests failed: 2 (want = 0)",
		"a note with <angle> brackets",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteTable output lacks %q:\n%s", want, out)
		}
	}
	// The NaN p99 of the second row prints as "-".
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "cairn <gw>") && !strings.Contains(line, " - ") {
			t.Errorf("row with a missing value = %q; want a -", line)
		}
	}
}

// checkSVG parses doc fully with encoding/xml and returns the count of
// each element name.
func checkSVG(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	counts := map[string]int{}
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
				if se.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace = %q; want SVG's", se.Name.Space)
				}
			}
			counts[se.Name.Local]++
			for _, a := range se.Attr {
				if strings.Contains(a.Value, "NaN") || strings.Contains(a.Value, "Inf") {
					t.Errorf("<%s %s=%q> holds a non-finite number", se.Name.Local, a.Name.Local, a.Value)
				}
			}
		}
	}
	if root != "svg" {
		t.Errorf("root element = %q; want svg", root)
	}
	return counts
}

func TestReportSVG(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteSVG(&buf); err != nil {
		t.Fatalf("WriteSVG: %v", err)
	}
	counts := checkSVG(t, buf.Bytes())
	// Two series with points in chart 1, one in chart 2.
	if counts["polyline"] != 3 {
		t.Errorf("polylines = %d; want 3", counts["polyline"])
	}
	if counts["g"] != 2 {
		t.Errorf("chart groups = %d; want 2", counts["g"])
	}
	if !strings.Contains(buf.String(), "incident &amp; rollback") || strings.Contains(buf.String(), ">never<") {
		t.Errorf("markers: want the finite one, escaped, and not the infinite one")
	}
	if !strings.Contains(buf.String(), `stroke-dasharray="6,3"`) {
		t.Errorf("the dashed series is not dashed")
	}

	buf.Reset()
	empty := &Report{Scenario: "x"}
	if err := empty.WriteSVG(&buf); err != nil {
		t.Fatalf("WriteSVG(empty): %v", err)
	}
	checkSVG(t, buf.Bytes())
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		v    float64
		unit string
		want string
	}{
		{12345.6, "rps", "12346"},
		{3, "count", "3"},
		{0.0123, "ms", "0.012"},
		{0.5, "ms", "0.50"},
		{12.34, "ms", "12.3"},
		{123.4, "ms", "123"},
		{0, "ms", "0"},
		{-1.28, "ms", "-1.28"},
		{45.67, "MiB", "45.7"},
		{2.5, "x", "2.5"},
		{0.6012, "s", "0.601"},
		{42, "", "42"},
		{42.5, "", "42.5"},
		{math.NaN(), "", "n/a"},
		{math.Inf(1), "ms", "n/a"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.v, tt.unit); got != tt.want {
			t.Errorf("formatValue(%v, %q) = %q; want %q", tt.v, tt.unit, got, tt.want)
		}
	}
}

func TestCPUModel(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"x86", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC   7B13 64-Core Processor\n", "AMD EPYC 7B13 64-Core Processor"},
		{"arm", "processor\t: 0\nCPU part\t: 0xd0c\n\nModel\t: Raspberry Pi 5\n", "0xd0c"},
		{"none", "processor\t: 0\n", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuModel([]byte(tt.in)); got != tt.want {
				t.Errorf("cpuModel(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMachineInfo(t *testing.T) {
	m := machineInfo()
	if m.CPUs < 1 || m.OS == "" || m.Arch == "" || m.CPUModel == "" {
		t.Errorf("machineInfo() = %+v", m)
	}
	if _, err := os.Stat("/proc/cpuinfo"); err == nil && m.MemTotal <= 0 {
		t.Errorf("machineInfo().MemTotal = %d on a machine with /proc", m.MemTotal)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestMetricValue(t *testing.T) {
	exp := []byte("# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines_total 9\ngo_goroutines 42\ncairn_goroutines 7\n")
	if got := metricValue(exp, "go_goroutines", "cairn_goroutines"); got != 42 {
		t.Errorf("metricValue(go_goroutines) = %v; want 42", got)
	}
	if got := metricValue(exp, "cairn_goroutines"); got != 7 {
		t.Errorf("metricValue(cairn_goroutines) = %v; want 7", got)
	}
	if got := metricValue(exp, "missing"); !math.IsNaN(got) {
		t.Errorf("metricValue(missing) = %v; want NaN", got)
	}
}
