// Package svgchart draws line charts as hand-written SVG: axes with ticks, a
// line per series, horizontal rules (thresholds), labelled vertical markers
// and a legend. The loadtest reports and the incident charts (the console,
// the postmortem, the CLI) share it so that every chart Cairn draws reads
// the same way.
//
// Charts never rely on colour alone: series of different groups get
// different dash patterns as well as colours, and every line and marker is
// labelled in text.
package svgchart

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Layout, in pixels.
const (
	Width        = 960
	ChartHeight  = 360
	marginLeft   = 72
	marginRight  = 200 // legend column
	marginTop    = 36
	marginBottom = 48
)

// MarginLeft is where the plot area (and a document's title) starts.
const MarginLeft = marginLeft

// palette colours series in order (Okabe–Ito, readable by the
// colour-blind); markers are drawn in grey.
var palette = [...]string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// dashes tells groups apart without colour; the first group is solid.
var dashes = [...]string{"", "8,4", "2,3", "10,3,2,3", "4,4", "14,4"}

// Chart is one chart. T values are seconds from the left edge of the x
// axis (0); with Start set, the x ticks are that many seconds after Start,
// printed as UTC clock times.
type Chart struct {
	Title   string   `json:"title"`
	YLabel  string   `json:"y_label"`
	XLabel  string   `json:"x_label"`
	Series  []Series `json:"series"`
	Markers []Marker `json:"markers,omitempty"`
	// Rules are horizontal reference lines, e.g. a threshold.
	Rules []Rule `json:"rules,omitempty"`
	// Start, when set, turns the x ticks into UTC clock times.
	Start time.Time `json:"-"`
	// XMax, when positive, fixes the x axis' end (else the data decide).
	XMax float64 `json:"-"`
	// StyleByGroup gives each group its own dash pattern as well as its
	// colour (Series.Dashed still dashes a series of the first group).
	StyleByGroup bool `json:"-"`
}

// Series is one line. Series of the same Group share a colour (e.g. one
// target's p50 and p99); Dashed draws the line dashed.
type Series struct {
	Name   string  `json:"name"`
	Group  string  `json:"group,omitempty"`
	Dashed bool    `json:"dashed,omitempty"`
	Points []Point `json:"points"`
}

// Point is one (time in seconds, value) pair. A NaN value breaks the line
// (a bucket without data).
type Point struct {
	T float64 `json:"t"`
	V float64 `json:"v"`
}

// Marker is a vertical line at T seconds with a label. Kind, when set, is
// written as the line's class (e.g. "rollback") so a page or a test can
// find it; Dash overrides the default dashed style.
type Marker struct {
	T     float64 `json:"t"`
	Label string  `json:"label"`
	Kind  string  `json:"kind,omitempty"`
	Dash  string  `json:"-"`
}

// Rule is a horizontal line at V with a label.
type Rule struct {
	V     float64 `json:"v"`
	Label string  `json:"label"`
}

// Write writes c as one standalone SVG document with a title line above
// it.
func Write(w io.Writer, c Chart, title, subtitle string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	const header = 48
	height := header + ChartHeight
	Open(bw, Width, height, title)
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", marginLeft, Escape(title))
	if subtitle != "" {
		fmt.Fprintf(bw, `<text x="%d" y="40" fill="#555555">%s</text>`+"\n", marginLeft, Escape(subtitle))
	}
	Draw(bw, c, header)
	Close(bw)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write svg: %w", err)
	}
	return nil
}

// Open starts an SVG document of the given size on a white background;
// title becomes its accessible name.
func Open(w io.Writer, width, height int, title string) {
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12" role="img">`+"\n",
		width, height, width, height)
	fmt.Fprintf(w, "<title>%s</title>\n", Escape(title))
	fmt.Fprintf(w, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
}

// Close ends a document started with Open.
func Close(w io.Writer) { fmt.Fprintln(w, `</svg>`) }

// Draw draws one chart whose box (Width × ChartHeight) starts at y0.
func Draw(w io.Writer, c Chart, y0 int) {
	left, right := float64(marginLeft), float64(Width-marginRight)
	top, bottom := float64(y0+marginTop), float64(y0+ChartHeight-marginBottom)

	xmax, ymax := 0.0, 0.0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if Finite(p.T) {
				xmax = max(xmax, p.T)
			}
			if Finite(p.V) {
				ymax = max(ymax, p.V)
			}
		}
	}
	for _, m := range c.Markers {
		if Finite(m.T) {
			xmax = max(xmax, m.T)
		}
	}
	for _, r := range c.Rules {
		if Finite(r.V) {
			ymax = max(ymax, r.V)
		}
	}
	if c.XMax > 0 {
		xmax = c.XMax
	}
	xStep, xTop := NiceAxis(xmax)
	if !c.Start.IsZero() {
		xStep, xTop = timeAxis(xmax)
	}
	yStep, yTop := NiceAxis(ymax * 1.05)
	px := func(t float64) float64 { return left + (right-left)*t/xTop }
	// Values sit a few pixels above the x axis so that a line at 0 is
	// not hidden by it.
	const inset = 5
	py := func(v float64) float64 { return bottom - inset - (bottom-inset-top)*v/yTop }

	fmt.Fprintf(w, `<g class="chart">`+"\n")
	fmt.Fprintf(w, `<text x="%g" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", left, y0+marginTop-12, Escape(c.Title))
	// Grid and ticks.
	for v := 0.0; v <= yTop*(1+1e-9); v += yStep {
		y := py(v)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, y, right, y)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#333333">%s</text>`+"\n", left-6, y+4, Escape(TickLabel(v, yStep)))
	}
	for t := 0.0; t <= xTop*(1+1e-9); t += xStep {
		x := px(t)
		label := TickLabel(t, xStep)
		if !c.Start.IsZero() {
			label = clockLabel(c.Start.Add(time.Duration(t*float64(time.Second))), xStep)
		}
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", x, bottom, x, bottom+4)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333333">%s</text>`+"\n", x, bottom+16, Escape(label))
	}
	// Axes.
	fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", left, top, left, bottom)
	fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", left, bottom, right, bottom)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333333">%s</text>`+"\n", (left+right)/2, bottom+34, Escape(c.XLabel))
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333333" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
		left-52, (top+bottom)/2, left-52, (top+bottom)/2, Escape(c.YLabel))
	// Rules.
	for _, r := range c.Rules {
		if !Finite(r.V) {
			continue
		}
		y := py(r.V)
		fmt.Fprintf(w, `<line class="rule" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#B00020" stroke-width="1.2" stroke-dasharray="3,3"/>`+"\n", left, y, right, y)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#B00020">%s</text>`+"\n", right-4, y-4, Escape(r.Label))
	}
	// Series: one colour per group (a series without a group is its own).
	groups := map[string]int{}
	var pts []byte
	for i, s := range c.Series {
		g := s.Group
		if g == "" {
			g = "\x00" + strconv.Itoa(i)
		}
		if _, ok := groups[g]; !ok {
			groups[g] = len(groups)
		}
		gi := groups[g]
		color := palette[gi%len(palette)]
		dash := ""
		switch {
		case c.StyleByGroup && dashes[gi%len(dashes)] != "":
			dash = ` stroke-dasharray="` + dashes[gi%len(dashes)] + `"`
		case s.Dashed:
			dash = ` stroke-dasharray="6,3"`
		}
		// A NaN value ends one polyline; the next finite point starts another.
		flush := func() {
			if len(pts) > 0 {
				fmt.Fprintf(w, `<polyline class="series" data-series="%s" fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`+"\n",
					Escape(s.Name), color, dash, strings.TrimSpace(string(pts)))
				pts = pts[:0]
			}
		}
		for _, p := range s.Points {
			if !Finite(p.T) || !Finite(p.V) {
				flush()
				continue
			}
			pts = strconv.AppendFloat(pts, math.Round(px(p.T)*10)/10, 'f', -1, 64)
			pts = append(pts, ',')
			pts = strconv.AppendFloat(pts, math.Round(py(p.V)*10)/10, 'f', -1, 64)
			pts = append(pts, ' ')
		}
		flush()
		ly := top + 8 + float64(i)*18
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/>`+"\n", right+16, ly, right+36, ly, color, dash)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f">%s</text>`+"\n", right+42, ly+4, Escape(s.Name))
	}
	// Markers. A label goes on the highest row where it does not run into
	// the label before it, so that close markers stay readable.
	var rowEnd []float64
	for _, m := range c.Markers {
		if !Finite(m.T) {
			continue
		}
		x := px(m.T)
		dash := m.Dash
		if dash == "" {
			dash = "5,4"
		}
		class := ""
		if m.Kind != "" {
			class = ` class="marker marker-` + Escape(m.Kind) + `"`
		}
		fmt.Fprintf(w, `<line%s x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#666666" stroke-dasharray="%s"><title>%s</title></line>`+"\n",
			class, x, top, x, bottom, dash, Escape(m.Label))
		width := labelWidth(m.Label)
		anchor, tx, x0, x1 := "start", x+4, x+4, x+4+width
		if x1 > right {
			anchor, tx, x0, x1 = "end", x-4, x-4-width, x-4 // keep labels near the right edge inside the plot
		}
		row := 0
		for row < len(rowEnd) && rowEnd[row] > x0 {
			row++
		}
		if row == len(rowEnd) {
			rowEnd = append(rowEnd, 0)
		}
		rowEnd[row] = x1 + 4
		ly := top + 12 + float64(row%8)*14
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="%s" fill="#444444">%s</text>`+"\n", tx, ly, anchor, Escape(m.Label))
	}
	fmt.Fprintf(w, "</g>\n")
}

// labelWidth estimates the width of a label at the chart's font size.
func labelWidth(s string) float64 { return 6.6 * float64(len([]rune(s))) }

// Finite reports whether f is neither NaN nor infinite.
func Finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// NiceAxis returns a tick step of 1, 2 or 5 × 10^k giving at most about 8
// ticks, and the axis top (a multiple of the step ≥ v; 1 when v ≤ 0).
func NiceAxis(v float64) (step, top float64) {
	if !(v > 0) || !Finite(v) {
		return 0.2, 1
	}
	raw := v / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / mag; {
	case f <= 1:
		step = mag
	case f <= 2:
		step = 2 * mag
	case f <= 5:
		step = 5 * mag
	default:
		step = 10 * mag
	}
	top = math.Ceil(v/step-1e-9) * step
	if top <= 0 {
		top = step
	}
	return step, top
}

// timeSteps are the tick steps of a clock axis, in seconds.
var timeSteps = [...]float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400}

// timeAxis is NiceAxis for seconds shown as clock times: steps of whole
// seconds, minutes or hours, at most about 8 ticks.
func timeAxis(v float64) (step, top float64) {
	if !(v > 0) || !Finite(v) {
		return 1, 1
	}
	step = timeSteps[len(timeSteps)-1]
	for _, s := range timeSteps {
		if v/s <= 8 {
			step = s
			break
		}
	}
	top = math.Ceil(v/step-1e-9) * step
	return step, max(top, step)
}

func clockLabel(t time.Time, step float64) string {
	if step < 60 {
		return t.UTC().Format("15:04:05")
	}
	return t.UTC().Format("15:04")
}

// TickLabel prints v with as many decimals as step needs.
func TickLabel(v, step float64) string {
	dec := 0
	if step < 1 {
		dec = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// Escape escapes s for SVG text and attribute values.
func Escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) //nolint:errcheck // strings.Builder never fails
	return b.String()
}
