package incidents

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/internal/svgchart"
)

// Issue 18: the incident's timeline chart. Per cohort of the route, the
// failing signal's value in 1 s to 1 min buckets, from before the first
// failure (back to the earliest change in the lookback) to after the
// resolution, the threshold as a line, and labelled vertical markers for
// each change, the first failure, the detection, each rollback and the
// resolution. The console, the postmortem and the CLI draw the same chart.

// chartBuckets is about how many buckets a chart aims for; the bucket
// width is the step of chartSteps that gives at most this many, between
// 1 s and 1 min.
const chartBuckets = 240

var chartSteps = [...]time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
	15 * time.Second, 30 * time.Second, time.Minute}

// Chart gathers the records an incident's chart draws. Build it with
// NewChart, pass it every record of Period (Add; records outside are
// ignored), then Render or WriteSVG. A Chart is not safe for concurrent
// use.
type Chart struct {
	inc      *Incident
	from, to time.Time
	bucket   time.Duration
	sig      int
	cohorts  map[string]*cohortSeries
	order    []string
	records  int
}

// cohortSeries accumulates one cohort's buckets.
type cohortSeries struct {
	n, bad []int64
	sum    []float64   // tokens or cost of the successes (ratio signals)
	lat    [][]float64 // latencies, for latency_p99
}

// NewChart prepares the chart of i as of now (an incident still open is
// drawn up to now).
func NewChart(i *Incident, now time.Time) *Chart {
	from, to, bucket := chartPeriod(i, now)
	c := &Chart{inc: i, from: from, to: to, bucket: bucket, sig: signalIndex(i.Trigger.Signal), cohorts: map[string]*cohortSeries{}}
	if rs := i.State.Route(i.Trigger.Route); rs != nil {
		for _, t := range rs.Targets {
			c.cohort(t.Cohort)
		}
	}
	return c
}

// Period is the route and time range whose records the chart draws.
func (c *Chart) Period() capture.Period {
	return capture.Period{Route: c.inc.Trigger.Route, From: c.from, To: c.to}
}

// Bucket is the width of one bucket.
func (c *Chart) Bucket() time.Duration { return c.bucket }

// chartPeriod chooses the range and the bucket width: from before the first
// failure (at least twice the detection window, half the incident's length,
// and back to the earliest change) to after the resolution (or now).
func chartPeriod(i *Incident, now time.Time) (from, to time.Time, bucket time.Duration) {
	ff := i.FirstFailureAt
	if ff.IsZero() {
		ff = i.DetectedAt
	}
	if ff.IsZero() {
		ff = i.OpenedAt
	}
	end := now
	if i.ResolvedAt != nil {
		end = *i.ResolvedAt
	}
	if end.Before(ff) {
		end = ff
	}
	length := end.Sub(ff)
	lead := max(2*i.Trigger.Window.D(), length/2, 30*time.Second)
	from = ff.Add(-lead)
	for _, e := range i.Changes {
		if !e.At.IsZero() && e.At.Before(from) {
			from = e.At.Add(-lead / 4)
		}
	}
	to = end.Add(max(length/10, i.Trigger.Window.D(), 10*time.Second))
	if i.ResolvedAt == nil || to.After(now) {
		to = now // nothing after now to draw
		if to.Before(end) {
			to = end
		}
	}
	bucket = chartSteps[len(chartSteps)-1]
	for _, s := range chartSteps {
		if to.Sub(from)/s <= chartBuckets {
			bucket = s
			break
		}
	}
	from = from.Truncate(bucket)
	to = to.Truncate(bucket).Add(bucket)
	return from.UTC(), to.UTC(), bucket
}

func (c *Chart) nBuckets() int { return int(c.to.Sub(c.from) / c.bucket) }

func (c *Chart) cohort(name string) *cohortSeries {
	if s := c.cohorts[name]; s != nil {
		return s
	}
	n := c.nBuckets()
	s := &cohortSeries{n: make([]int64, n), bad: make([]int64, n)}
	switch c.sig {
	case sigLatency:
		s.lat = make([][]float64, n)
	case sigTokens, sigCost:
		s.sum = make([]float64, n)
	}
	c.cohorts[name] = s
	c.order = append(c.order, name)
	return s
}

// Add counts r in its cohort's bucket. It always returns true, so that it
// can be passed to capture.Writer.Between as it is.
func (c *Chart) Add(r *capture.Record) bool {
	if r.Route != c.inc.Trigger.Route || r.ReceivedAt.Before(c.from) || !r.ReceivedAt.Before(c.to) {
		return true
	}
	cl, ok := classify(r)
	if !ok {
		return true
	}
	b := int(r.ReceivedAt.Sub(c.from) / c.bucket)
	s := c.cohort(r.Cohort)
	c.records++
	s.n[b]++
	switch c.sig {
	case sigLatency:
		s.lat[b] = append(s.lat[b], r.LatencyMS)
	case sigTokens:
		if cl.ok {
			s.bad[b]++ // successes, the denominator
			s.sum[b] += float64(cl.tokens)
		}
	case sigCost:
		if cl.ok && cl.priced {
			s.bad[b]++
			s.sum[b] += cl.cost
		}
	case sigRefusal:
		if cl.refusal {
			s.bad[b]++
		}
	case sigPII:
		if cl.pii {
			s.bad[b]++
		}
	case sigContract, sig429, sigError:
		if (predicate{sig: c.sig}).match(r, &cl) {
			s.bad[b]++
		}
	default: // declared, eval_drift: records carry no score; draw failures
		if cl.failed || cl.contract || cl.r429 {
			s.bad[b]++
		}
	}
	return true
}

// Records is how many records the chart counted.
func (c *Chart) Records() int { return c.records }

// chartUnit returns the y axis label, how a value is scaled for it, and
// whether the trigger's threshold is drawn.
func (c *Chart) chartUnit() (label string, scale float64, rule bool) {
	switch c.sig {
	case sigLatency:
		return "p99 latency (ms)", 1, true
	case sigTokens:
		return "tokens per success", 1, true
	case sigCost:
		return "USD per success", 1, true
	case sigEval, sigDeclared:
		return "failed requests (%)", 100, false
	}
	name, _ := rateWords(c.inc.Trigger.Signal)
	return name + " (%)", 100, true
}

// Render returns the chart to draw.
func (c *Chart) Render() svgchart.Chart {
	tr := c.inc.Trigger
	ylabel, scale, rule := c.chartUnit()
	out := svgchart.Chart{
		Title:        fmt.Sprintf("%s on route %s by cohort, %s buckets", ylabel, tr.Route, fmtDur(c.bucket)),
		YLabel:       ylabel,
		XLabel:       "time (UTC)",
		Start:        c.from,
		XMax:         c.to.Sub(c.from).Seconds(),
		StyleByGroup: true,
	}
	if c.sig == sigEval {
		out.Title += " (eval scores are not drawn)"
	}
	names := slices.Clone(c.order)
	// Configured cohorts first, in the route's order; others after, sorted.
	nConf := 0
	if rs := c.inc.State.Route(tr.Route); rs != nil {
		nConf = len(rs.Targets)
	}
	if nConf < len(names) {
		sort.Strings(names[nConf:])
	}
	for _, name := range names {
		s := c.cohorts[name]
		label := "cohort " + name
		if name == "" {
			label = "no cohort"
		}
		if tr.Cohort != "" && name == tr.Cohort {
			label += " (failing)"
		}
		ser := svgchart.Series{Name: label, Group: name, Points: make([]svgchart.Point, 0, len(s.n))}
		for b := range s.n {
			v := math.NaN()
			switch c.sig {
			case sigLatency:
				if len(s.lat[b]) > 0 {
					v = p99(s.lat[b])
				}
			case sigTokens, sigCost:
				if s.bad[b] > 0 {
					v = s.sum[b] / float64(s.bad[b])
				}
			default:
				if s.n[b] > 0 {
					v = float64(s.bad[b]) / float64(s.n[b]) * scale
				}
			}
			ser.Points = append(ser.Points, svgchart.Point{T: (time.Duration(b) * c.bucket).Seconds(), V: v})
		}
		out.Series = append(out.Series, ser)
	}
	if rule && tr.Threshold > 0 {
		out.Rules = append(out.Rules, svgchart.Rule{V: tr.Threshold * scale, Label: "threshold " + fmtValue(tr.Unit, tr.Threshold)})
	}
	out.Markers = c.markers()
	return out
}

// Marker dash patterns: each kind reads apart without colour, and each
// is labelled.
const (
	dashChange   = "2,3"
	dashFailure  = "6,3"
	dashDetected = "1,0"
	dashRollback = "10,3,2,3"
	dashResolved = "4,4"
)

func (c *Chart) markers() []svgchart.Marker {
	i := c.inc
	var ms []svgchart.Marker
	add := func(at time.Time, label, kind, dash string) {
		if at.IsZero() || at.Before(c.from) || at.After(c.to) {
			return
		}
		ms = append(ms, svgchart.Marker{T: at.Sub(c.from).Seconds(), Label: label, Kind: kind, Dash: dash})
	}
	for _, e := range i.Changes {
		label := "change"
		if e.Source != "" {
			label += " (" + e.Source + ")"
		}
		add(e.At, label, "change", dashChange)
	}
	add(i.FirstFailureAt, "first failure", "first_failure", dashFailure)
	add(i.DetectedAt, "detection", "detection", dashDetected)
	for _, a := range i.Actions {
		switch {
		case a.Kind == "rollback" && a.OK:
			add(a.At, "rollback", "rollback", dashRollback)
		case a.Kind == "prompt_revert" && a.OK:
			add(a.At, "prompt revert", "rollback", dashRollback)
		}
	}
	if i.ResolvedAt != nil {
		label := "resolved"
		if i.Resolution == ResolutionNoTraffic {
			label = "resolved (no traffic)"
		}
		add(*i.ResolvedAt, label, "resolved", dashResolved)
	}
	slices.SortStableFunc(ms, func(a, b svgchart.Marker) int { return cmpFloat(a.T, b.T) })
	return ms
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// p99 is the nearest-rank 99th percentile of vs (reordered).
func p99(vs []float64) float64 {
	slices.Sort(vs)
	k := int(math.Ceil(0.99*float64(len(vs)))) - 1
	return vs[max(k, 0)]
}

// WriteSVG writes the chart as a standalone SVG document.
func (c *Chart) WriteSVG(w io.Writer) error {
	i := c.inc
	title := fmt.Sprintf("Incident %s: %s", i.ID, i.Trigger.Signal)
	sub := fmt.Sprintf("%s to %s UTC · %d requests drawn · status %s", c.from.Format("2006-01-02 15:04:05"), c.to.Format("15:04:05"), c.records, i.Status)
	return svgchart.Write(w, c.Render(), title, sub)
}
