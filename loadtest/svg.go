package loadtest

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// SVG layout, in pixels.
const (
	svgWidth       = 960
	svgChartHeight = 360
	svgHeader      = 48
	svgMarginLeft  = 72
	svgMarginRight = 200 // legend column
	svgMarginTop   = 36
	svgMarginBot   = 48
)

// svgPalette colours series in order (Okabe–Ito, readable by the
// colour-blind); markers are drawn in grey.
var svgPalette = [...]string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// WriteSVG draws the report's charts stacked vertically as one hand-written
// SVG document: axes with ticks, a line per series, a legend, and dashed
// vertical markers (incident, rollback, fault injected). A report without
// charts yields a document that says so.
func (r *Report) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	n := max(1, len(r.Charts))
	height := svgHeader + n*svgChartHeight
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(bw, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	title := fmt.Sprintf("cairn loadtest %s (%s) — %d CPUs, %s, commit %s", r.Scenario, r.Profile, r.Machine.CPUs, r.GoVersion, r.Commit)
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", svgMarginLeft, svgEscape(title))
	fmt.Fprintf(bw, `<text x="%d" y="40" fill="#555555">%s</text>`+"\n", svgMarginLeft, svgEscape(r.Machine.CPUModel+", "+r.Started.UTC().Format("2006-01-02 15:04 MST")))
	if len(r.Charts) == 0 {
		fmt.Fprintf(bw, `<text x="%d" y="%d">no chart for this scenario</text>`+"\n", svgMarginLeft, svgHeader+40)
	}
	for i, c := range r.Charts {
		writeChart(bw, c, svgHeader+i*svgChartHeight)
	}
	fmt.Fprintln(bw, `</svg>`)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write svg: %w", err)
	}
	return nil
}

// writeChart draws one chart whose box starts at y0.
func writeChart(w io.Writer, c Chart, y0 int) {
	left, right := float64(svgMarginLeft), float64(svgWidth-svgMarginRight)
	top, bottom := float64(y0+svgMarginTop), float64(y0+svgChartHeight-svgMarginBot)

	xmax, ymax := 0.0, 0.0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if finite(p.T) {
				xmax = max(xmax, p.T)
			}
			if finite(p.V) {
				ymax = max(ymax, p.V)
			}
		}
	}
	for _, m := range c.Markers {
		if finite(m.T) {
			xmax = max(xmax, m.T)
		}
	}
	xStep, xTop := niceAxis(xmax)
	yStep, yTop := niceAxis(ymax * 1.05)
	px := func(t float64) float64 { return left + (right-left)*t/xTop }
	py := func(v float64) float64 { return bottom - (bottom-top)*v/yTop }

	fmt.Fprintf(w, `<g class="chart">`+"\n")
	fmt.Fprintf(w, `<text x="%g" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", left, y0+svgMarginTop-12, svgEscape(c.Title))
	// Grid and ticks.
	for v := 0.0; v <= yTop*(1+1e-9); v += yStep {
		y := py(v)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, y, right, y)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#333333">%s</text>`+"\n", left-6, y+4, svgEscape(tickLabel(v, yStep)))
	}
	for t := 0.0; t <= xTop*(1+1e-9); t += xStep {
		x := px(t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", x, bottom, x, bottom+4)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333333">%s</text>`+"\n", x, bottom+16, svgEscape(tickLabel(t, xStep)))
	}
	// Axes.
	fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", left, top, left, bottom)
	fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>`+"\n", left, bottom, right, bottom)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333333">%s</text>`+"\n", (left+right)/2, bottom+34, svgEscape(c.XLabel))
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333333" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
		left-52, (top+bottom)/2, left-52, (top+bottom)/2, svgEscape(c.YLabel))
	// Series: one colour per group (a series without a group is its own).
	groups := map[string]int{}
	for i, s := range c.Series {
		g := s.Group
		if g == "" {
			g = "\x00" + strconv.Itoa(i)
		}
		if _, ok := groups[g]; !ok {
			groups[g] = len(groups)
		}
		color := svgPalette[groups[g]%len(svgPalette)]
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6,3"`
		}
		var pts strings.Builder
		for _, p := range s.Points {
			if !finite(p.T) || !finite(p.V) {
				continue
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(p.T), py(p.V))
		}
		if pts.Len() > 0 {
			fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`+"\n", color, dash, strings.TrimSpace(pts.String()))
		}
		ly := top + 8 + float64(i)*18
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/>`+"\n", right+16, ly, right+36, ly, color, dash)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f">%s</text>`+"\n", right+42, ly+4, svgEscape(s.Name))
	}
	// Markers.
	for i, m := range c.Markers {
		if !finite(m.T) {
			continue
		}
		x := px(m.T)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#666666" stroke-dasharray="5,4"/>`+"\n", x, top, x, bottom)
		ly := top + 12 + float64(i%4)*14
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" fill="#444444">%s</text>`+"\n", x+4, ly, svgEscape(m.Label))
	}
	fmt.Fprintf(w, "</g>\n")
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// niceAxis returns a tick step of 1, 2 or 5 × 10^k giving at most about 8
// ticks, and the axis top (a multiple of the step ≥ v; 1 when v ≤ 0).
func niceAxis(v float64) (step, top float64) {
	if !(v > 0) || !finite(v) {
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

// tickLabel prints v with as many decimals as step needs.
func tickLabel(v, step float64) string {
	dec := 0
	if step < 1 {
		dec = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

func svgEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) //nolint:errcheck // strings.Builder never fails
	return b.String()
}
