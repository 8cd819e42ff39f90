package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/cairnhq/cairn/internal/svgchart"
)

// Report is the outcome of one scenario run: the figures as tables, the
// targets checked against them, the charts for WriteSVG, and where they
// were measured. It is plain data, owned by the caller, and encodes to
// JSON as WriteJSON writes it.
type Report struct {
	Scenario  string    `json:"scenario"`
	Profile   string    `json:"profile"` // "full" or "quick"
	Machine   Machine   `json:"machine"`
	GoVersion string    `json:"go_version"`
	Commit    string    `json:"commit"`
	Started   time.Time `json:"started"`
	// Elapsed is the wall time of the whole run, in seconds.
	Elapsed float64 `json:"elapsed_s"`
	// Params are the load parameters (rates, connections, durations).
	Params map[string]float64 `json:"params"`
	Tables []Table            `json:"tables"`
	Checks []Check            `json:"checks"`
	Notes  []string           `json:"notes,omitempty"`
	Charts []Chart            `json:"charts,omitempty"`
}

// Machine is where a report was measured.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	MemTotal int64  `json:"mem_total_bytes,omitempty"`
}

// Table is a titled grid of figures: one Row per target or measurement,
// one Column per figure.
type Table struct {
	Title   string   `json:"title"`
	Columns []Column `json:"columns"`
	Rows    []Row    `json:"rows"`
}

// Column names one figure of a Table: Key indexes Row.Values, Title heads
// the column, Unit says how to read and print the value (ms, rps, MiB, %,
// s, x, count, KiB, bool).
type Column struct {
	Key   string `json:"key"`
	Title string `json:"title"`
	Unit  string `json:"unit"`
}

// Row is one line of a Table; a Column without a value prints as "-".
type Row struct {
	Name   string             `json:"name"`
	Values map[string]float64 `json:"values"`
}

// Kinds of Check.
const (
	// CheckTarget is a performance target (peak throughput 2x the stdlib
	// proxy's, rollback within 2 s, ...): a miss is a finding to profile,
	// and noisy on a shared machine.
	CheckTarget = "target"
	// CheckInvariant must hold on every run, however short or noisy: no
	// request failed, exactly RPM admitted, no failure after a rollback.
	CheckInvariant = "invariant"
)

// Check is one condition measured: Pass says whether Value met Target (a
// human-readable condition such as ">= 2"); Kind is CheckTarget or
// CheckInvariant.
type Check struct {
	Kind   string  `json:"kind"`
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Pass   bool    `json:"pass"`
}

// Chart, Series, Point and Marker are the report's charts; they are drawn
// by internal/svgchart, which the incident charts share.
type (
	Chart  = svgchart.Chart
	Series = svgchart.Series
	Point  = svgchart.Point
	Marker = svgchart.Marker
)

// add appends a row; non-finite values are dropped (JSON cannot hold them).
func (t *Table) add(name string, values map[string]float64) {
	clean := make(map[string]float64, len(values))
	for k, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			clean[k] = v
		}
	}
	t.Rows = append(t.Rows, Row{Name: name, Values: clean})
}

// check appends a Check. A non-finite value (nothing measured) fails and is
// stored as -1, so the JSON stays valid and the failure is visible.
func (r *Report) check(kind, name, target string, value float64, unit string, pass bool) {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		value, pass = -1, false
	}
	r.Checks = append(r.Checks, Check{Kind: kind, Name: name, Target: target, Value: value, Unit: unit, Pass: pass})
}

// target appends a CheckTarget.
func (r *Report) target(name, target string, value float64, unit string, pass bool) {
	r.check(CheckTarget, name, target, value, unit, pass)
}

// invariant appends a CheckInvariant.
func (r *Report) invariant(name, target string, value float64, unit string, pass bool) {
	r.check(CheckInvariant, name, target, value, unit, pass)
}

func (r *Report) note(format string, a ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, a...))
}

// Failed returns the checks of the given kinds ("" = any) that failed.
func (r *Report) Failed(kind string) []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.Pass && (kind == "" || c.Kind == kind) {
			out = append(out, c)
		}
	}
	return out
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteTable writes the report as aligned text: a header naming the
// machine, each table, the checks and the notes.
func (r *Report) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "cairn loadtest %s (%s profile) — %d CPUs %s, %s, commit %s, %s\n",
		r.Scenario, r.Profile, r.Machine.CPUs, r.Machine.CPUModel, r.GoVersion, r.Commit,
		r.Started.UTC().Format(time.RFC3339))
	if len(r.Params) > 0 {
		keys := sortedKeys(r.Params)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+strconv.FormatFloat(r.Params[k], 'f', -1, 64))
		}
		fmt.Fprintf(bw, "params: %s\n", strings.Join(parts, " "))
	}
	for _, t := range r.Tables {
		fmt.Fprintf(bw, "\n%s\n", t.Title)
		nameWidth := 0
		for _, row := range t.Rows {
			nameWidth = max(nameWidth, utf8.RuneCountInString(row.Name))
		}
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "\t")
		for _, c := range t.Columns {
			h := c.Title
			if c.Unit != "" && c.Unit != "count" && c.Unit != "bool" {
				h += " (" + c.Unit + ")"
			}
			fmt.Fprintf(tw, "%s\t", h)
		}
		fmt.Fprintln(tw)
		for _, row := range t.Rows {
			// Names read better left-aligned; tabwriter aligns right.
			fmt.Fprintf(tw, "%s%s\t", row.Name, strings.Repeat(" ", nameWidth-utf8.RuneCountInString(row.Name)))
			for _, c := range t.Columns {
				v, ok := row.Values[c.Key]
				if !ok {
					fmt.Fprint(tw, "-\t")
					continue
				}
				fmt.Fprintf(tw, "%s\t", formatValue(v, c.Unit))
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
	}
	if len(r.Checks) > 0 {
		fmt.Fprintf(bw, "\nchecks\n")
		for _, c := range r.Checks {
			mark := "PASS"
			if !c.Pass {
				mark = "FAIL"
			}
			unit := ""
			if c.Unit != "" && c.Unit != "count" && c.Unit != "bool" {
				unit = " " + c.Unit
			}
			fmt.Fprintf(bw, "  %s  %-9s  %s: %s%s (want %s)\n", mark, c.Kind, c.Name, formatValue(c.Value, c.Unit), unit, c.Target)
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(bw, "\nnotes\n")
		for _, n := range r.Notes {
			fmt.Fprintf(bw, "  - %s\n", n)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// formatValue prints v for its unit with sensible precision; "n/a" when
// v is not a number.
func formatValue(v float64, unit string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	switch unit {
	case "count", "rps", "bool", "streams":
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case "s":
		if math.Abs(v) >= 10 {
			return strconv.FormatFloat(v, 'f', 1, 64)
		}
		return strconv.FormatFloat(v, 'f', 3, 64)
	case "%", "MiB", "x":
		if math.Abs(v) >= 100 {
			return strconv.FormatFloat(v, 'f', 0, 64)
		}
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	a := math.Abs(v)
	switch {
	case unit == "" && a < 1e15 && v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// machineInfo reads the CPU count and model, and total memory.
func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUModel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
						m.MemTotal = n << 10
					}
				}
				break
			}
		}
	}
	return m
}

// cpuModel returns the first "model name" (x86) or "Model"/"CPU part"
// (arm) of /proc/cpuinfo contents, "unknown" if none.
func cpuModel(cpuinfo []byte) string {
	var fallback string
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "model name":
			if v != "" {
				return strings.Join(strings.Fields(v), " ")
			}
		case "Model", "Hardware", "CPU part":
			if fallback == "" && v != "" {
				fallback = v
			}
		}
	}
	if fallback != "" {
		return fallback
	}
	return "unknown"
}

// loadAvg1 returns the 1-minute load average from /proc/loadavg, NaN when
// unknown. A figure measured with a load above the CPU count shared the
// machine with other work.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// gitCommit returns `git rev-parse --short HEAD` run in the working
// directory, else in each of dirs, "unknown" when all fail.
func gitCommit(ctx context.Context, dirs ...string) string {
	for _, dir := range append([]string{""}, dirs...) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		cmd := exec.CommandContext(cctx, "git", "rev-parse", "--short", "HEAD")
		if dir != "" {
			cmd.Dir = dir
		}
		out, err := cmd.Output()
		cancel()
		if err == nil {
			if s := strings.TrimSpace(string(out)); s != "" {
				return s
			}
		}
	}
	return "unknown"
}

// newReport fills the fields every scenario shares.
func newReport(ctx context.Context, scenario string, o Options) *Report {
	profile := "full"
	if o.Quick {
		profile = "quick"
	}
	var dirs []string
	if o.Binary != "" {
		dirs = append(dirs, filepath.Dir(o.Binary))
	}
	return &Report{
		Scenario:  scenario,
		Profile:   profile,
		Machine:   machineInfo(),
		GoVersion: runtime.Version(),
		Commit:    gitCommit(ctx, dirs...),
		Started:   time.Now().UTC(),
		Params:    map[string]float64{},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
