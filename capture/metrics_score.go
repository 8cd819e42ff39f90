package capture

import (
	"bufio"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// scoreMetrics are the eval score and money families (issue 16), all
// labelled by route, cohort and target only: never by a score's name or
// any other client-chosen string.
//
//	scores_received_total{route,cohort,target}  counter: scores stored
//	score_mean{route,cohort,target}              gauge: mean of the scores received in the last 1–2 minutes
//	cost_usd_total{route,cohort,target}          counter: cost_usd of priced requests
//	requests_unpriced_total{route,cohort,target} counter: requests with usage but no price (cost_usd null)
type scoreMetrics struct {
	lostFile, lostRedis atomic.Uint64

	mu     sync.Mutex
	now    func() time.Time
	series map[[3]string]*scoreSeries
}

type scoreSeries struct {
	received uint64
	minute   int64      // the current minute (unix minutes)
	sum, n   [2]float64 // [0] this minute, [1] the one before
	cost     float64
	unpriced uint64
}

func newScoreMetrics() *scoreMetrics {
	return &scoreMetrics{now: time.Now, series: map[[3]string]*scoreSeries{}}
}

// get returns the series of a label set, under mu; past maxSeries new label
// sets count as "other".
func (m *scoreMetrics) get(route, cohort, target string) *scoreSeries {
	k := [3]string{route, cohort, target}
	s := m.series[k]
	if s == nil {
		if len(m.series) >= maxSeries {
			k = [3]string{"other", "other", "other"}
			if s = m.series[k]; s != nil {
				return s
			}
		}
		s = &scoreSeries{}
		m.series[k] = s
	}
	return s
}

func (s *scoreSeries) roll(minute int64) {
	switch d := minute - s.minute; {
	case d == 1:
		s.sum[1], s.n[1] = s.sum[0], s.n[0]
		s.sum[0], s.n[0] = 0, 0
	case d > 1:
		s.sum, s.n = [2]float64{}, [2]float64{}
	}
	if minute > s.minute {
		s.minute = minute
	}
}

func (m *Metrics) observeScores(scores []Score) {
	sm := m.scores
	minute := sm.now().Unix() / 60
	sm.mu.Lock()
	defer sm.mu.Unlock()
	for i := range scores {
		sc := &scores[i]
		s := sm.get(sc.Route, sc.Cohort, sc.Target)
		s.received++
		s.roll(minute)
		s.sum[0] += sc.Value
		s.n[0]++
	}
}

// observeCost counts a record's cost_usd, or that it had usage but no
// price.
func (m *Metrics) observeCost(r *Record, target string) {
	if r.CostUSD == nil && r.Usage.TotalTokens+r.Usage.PromptTokens+r.Usage.CompletionTokens == 0 {
		return
	}
	sm := m.scores
	sm.mu.Lock()
	defer sm.mu.Unlock()
	s := sm.get(r.Route, r.Cohort, target)
	if r.CostUSD == nil {
		s.unpriced++
		return
	}
	s.cost += *r.CostUSD
}

func (m *scoreMetrics) write(bw *bufio.Writer) {
	m.mu.Lock()
	keys := make([][3]string, 0, len(m.series))
	for k := range m.series {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [3]string) int { return slices.Compare(a[:], b[:]) })
	minute := m.now().Unix() / 60
	type row struct {
		labels             string
		received, unpriced uint64
		mean, cost         float64
		hasMean            bool
	}
	rows := make([]row, 0, len(keys))
	for _, k := range keys {
		s := m.series[k]
		s.roll(minute)
		r := row{labels: `route="` + escapeLabel(k[0]) + `",cohort="` + escapeLabel(k[1]) + `",target="` + escapeLabel(k[2]) + `"`,
			received: s.received, unpriced: s.unpriced, cost: s.cost}
		if n := s.n[0] + s.n[1]; n > 0 {
			r.mean, r.hasMean = (s.sum[0]+s.sum[1])/n, true
		}
		rows = append(rows, r)
	}
	m.mu.Unlock()
	bw.WriteString("# HELP cairn_scores_received_total Eval scores stored (POST /admin/scores), by the scored request's route, cohort and target.\n# TYPE cairn_scores_received_total counter\n")
	for _, r := range rows {
		if r.received > 0 {
			bw.WriteString("cairn_scores_received_total{" + r.labels + "} " + strconv.FormatUint(r.received, 10) + "\n")
		}
	}
	bw.WriteString("# HELP cairn_score_mean Mean of the eval scores received in the last one to two minutes (every score name).\n# TYPE cairn_score_mean gauge\n")
	for _, r := range rows {
		if r.hasMean {
			bw.WriteString("cairn_score_mean{" + r.labels + "} " + formatFloat(r.mean) + "\n")
		}
	}
	bw.WriteString("# HELP cairn_cost_usd_total Cost in USD of requests priced by pricing:, by route, cohort and target.\n# TYPE cairn_cost_usd_total counter\n")
	for _, r := range rows {
		if r.cost > 0 {
			bw.WriteString("cairn_cost_usd_total{" + r.labels + "} " + formatFloat(r.cost) + "\n")
		}
	}
	bw.WriteString("# HELP cairn_requests_unpriced_total Requests with token usage whose model has no price (cost_usd null).\n# TYPE cairn_requests_unpriced_total counter\n")
	for _, r := range rows {
		if r.unpriced > 0 {
			bw.WriteString("cairn_requests_unpriced_total{" + r.labels + "} " + strconv.FormatUint(r.unpriced, 10) + "\n")
		}
	}
	bw.WriteString("# HELP cairn_scores_lost_total Eval scores not stored in a sink (file: refused to the caller, who got a 5xx; redis: kept in the file only).\n# TYPE cairn_scores_lost_total counter\n")
	bw.WriteString(`cairn_scores_lost_total{sink="file"} ` + strconv.FormatUint(m.lostFile.Load(), 10) + "\n")
	bw.WriteString(`cairn_scores_lost_total{sink="redis"} ` + strconv.FormatUint(m.lostRedis.Load(), 10) + "\n")
}
