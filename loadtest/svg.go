package loadtest

import (
	"bufio"
	"fmt"
	"io"

	"github.com/cairnhq/cairn/internal/svgchart"
)

// svgHeader is the height of the report's title lines above the charts.
const svgHeader = 48

// WriteSVG draws the report's charts stacked vertically as one SVG
// document (internal/svgchart): axes with ticks, a line per series, a
// legend, and dashed vertical markers (incident, rollback, fault injected).
// A report without charts yields a document that says so.
func (r *Report) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	n := max(1, len(r.Charts))
	height := svgHeader + n*svgchart.ChartHeight
	title := fmt.Sprintf("cairn loadtest %s (%s) — %d CPUs, %s, commit %s", r.Scenario, r.Profile, r.Machine.CPUs, r.GoVersion, r.Commit)
	svgchart.Open(bw, svgchart.Width, height, title)
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", svgchart.MarginLeft, svgchart.Escape(title))
	fmt.Fprintf(bw, `<text x="%d" y="40" fill="#555555">%s</text>`+"\n", svgchart.MarginLeft, svgchart.Escape(r.Machine.CPUModel+", "+r.Started.UTC().Format("2006-01-02 15:04 MST")))
	if len(r.Charts) == 0 {
		fmt.Fprintf(bw, `<text x="%d" y="%d">no chart for this scenario</text>`+"\n", svgchart.MarginLeft, svgHeader+40)
	}
	for i, c := range r.Charts {
		svgchart.Draw(bw, c, svgHeader+i*svgchart.ChartHeight)
	}
	svgchart.Close(bw)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write svg: %w", err)
	}
	return nil
}

func finite(f float64) bool { return svgchart.Finite(f) }
