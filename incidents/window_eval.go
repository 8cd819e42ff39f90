package incidents

import (
	"slices"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// The score windows of eval_drift: one sliding window per route, cohort
// and score name, in buckets like the record windows (window.go), with
// the lowest scores kept for samples and the scores by prompt version and
// release kept for the baseline before a change.

// lowScore is one low score kept for samples.
type lowScore struct {
	id    string
	value float64
	at    time.Time // the request's time
}

type evalAgg struct {
	n   int64
	sum float64
}

func (a *evalAgg) mean() float64 {
	if a.n == 0 {
		return 0
	}
	return a.sum / float64(a.n)
}

type evalBucket struct {
	idx int64
	evalAgg
	low []lowScore // lowest first
}

// evalSeries is the sliding window of one route, cohort and score name:
// cur sums the last nb buckets, base the baselineWindows windows before.
type evalSeries struct {
	// versions are the series' scores by prompt version and release,
	// over the lookback: the baseline "before the latest change" when the
	// route has no other cohort to compare with. current is the version
	// of the latest score.
	versions map[string]*versionAgg
	current  string

	cohort, name string
	target       string // the target of the latest score
	ring         []evalBucket
	nb, head     int64
	cur, base    evalAgg
	firing       bool
	level        configs.Severity
}

// versionAgg sums one prompt version's and release's scores.
type versionAgg struct {
	evalAgg
	last time.Time // when its latest score arrived
}

func newEvalSeries(cohort, name string, nb int64) *evalSeries {
	s := &evalSeries{versions: map[string]*versionAgg{}, cohort: cohort, name: name, ring: make([]evalBucket, nb*(1+baselineWindows)), nb: nb, head: -1}
	for i := range s.ring {
		s.ring[i].idx = -1
	}
	return s
}

func (s *evalSeries) slot(idx int64) *evalBucket { return &s.ring[idx%int64(len(s.ring))] }

func (s *evalSeries) advance(idx int64) {
	reset := func(b *evalBucket, i int64) {
		b.idx, b.evalAgg, b.low = i, evalAgg{}, b.low[:0]
	}
	if s.head < 0 {
		s.head = idx
		reset(s.slot(idx), idx)
		return
	}
	if idx <= s.head {
		return
	}
	L := int64(len(s.ring))
	if idx-s.head >= L {
		for i := range s.ring {
			reset(&s.ring[i], -1)
		}
		s.cur, s.base = evalAgg{}, evalAgg{}
		s.head = idx
		reset(s.slot(idx), idx)
		return
	}
	for i := s.head + 1; i <= idx; i++ {
		if j := i - s.nb; j >= 0 {
			if b := s.slot(j); b.idx == j {
				s.cur.n -= b.n
				s.cur.sum -= b.sum
				s.base.n += b.n
				s.base.sum += b.sum
			}
		}
		b := s.slot(i)
		if b.idx >= 0 && b.idx == i-L {
			s.base.n -= b.n
			s.base.sum -= b.sum
		}
		reset(b, i)
	}
	s.head = idx
	if s.cur.n == 0 {
		s.cur.sum = 0 // no float residue in an empty window
	}
	if s.base.n == 0 {
		s.base.sum = 0
	}
}

// versionKey names the prompt version and release a score was given
// under.
func versionKey(sc *capture.Score) string {
	return "prompt " + orDash(sc.PromptVersion) + ", release " + orDash(sc.Release)
}

func (s *evalSeries) add(sc *capture.Score, now time.Time) {
	ver := versionKey(sc)
	v := s.versions[ver]
	if v == nil && len(s.versions) < maxVersionsPerCohort {
		v = &versionAgg{}
		s.versions[ver] = v
	}
	if v != nil {
		v.n++
		v.sum += sc.Value
		v.last = now
	}
	s.current = ver
	b := s.slot(s.head)
	b.n++
	b.sum += sc.Value
	s.cur.n++
	s.cur.sum += sc.Value
	s.target = sc.Target
	l := lowScore{id: sc.RequestID, value: sc.Value, at: sc.RequestAt}
	i, _ := slices.BinarySearchFunc(b.low, l, func(a, b lowScore) int {
		switch {
		case a.value < b.value:
			return -1
		case a.value > b.value:
			return 1
		}
		return 0
	})
	if i < lowPerBucket {
		b.low = slices.Insert(b.low, i, l)
		if len(b.low) > lowPerBucket {
			b.low = b.low[:lowPerBucket]
		}
	}
}

// lowest returns the window's lowest scores, lowest first.
func (s *evalSeries) lowest(n int) []lowScore {
	var all []lowScore
	for i := max(0, s.head-s.nb+1); i <= s.head; i++ {
		if b := s.slot(i); b.idx == i {
			all = append(all, b.low...)
		}
	}
	slices.SortStableFunc(all, func(a, b lowScore) int {
		switch {
		case a.value < b.value:
			return -1
		case a.value > b.value:
			return 1
		}
		return a.at.Compare(b.at)
	})
	return all[:min(n, len(all))]
}

// firstBelow returns the earliest request time among the window's kept low
// scores below thr (the zero time when none is kept).
func (s *evalSeries) firstBelow(thr float64) time.Time {
	var first time.Time
	for i := max(0, s.head-s.nb+1); i <= s.head; i++ {
		if b := s.slot(i); b.idx == i {
			for _, l := range b.low {
				if l.value <= thr && (first.IsZero() || l.at.Before(first)) {
					first = l.at
				}
			}
		}
	}
	return first
}
