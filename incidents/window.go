package incidents

import (
	"math"
	"time"

	"github.com/cairnhq/cairn/capture"
)

func latIndex(ms float64) int {
	if !(ms > 1) {
		return 0
	}
	i := int(math.Ceil(4 * math.Log2(ms)))
	return min(i, latOverflow)
}

// latUpper returns 2^(i/4), the upper bound of bucket i, without Exp2.
func latUpper(i int) float64 {
	f := 1.0
	switch i & 3 {
	case 1:
		f = 1.189207115002721 // 2^(1/4)
	case 2:
		f = 1.4142135623730951 // 2^(2/4)
	case 3:
		f = 1.681792830507429 // 2^(3/4)
	}
	return math.Ldexp(f, i>>2)
}

// class is what one record contributes to the windows.
type class struct {
	failed, contract, r429, ok bool
	refusal, pii               bool // signal_guardrails.go
	tokens                     int64
	lat                        int
	cost                       float64 // cost_usd; 0 when unpriced
	priced                     bool
}

// classify returns the record's class and whether it counts at all: the
// client's own mistakes and disconnects, the key's budget and the gateway's
// overload say nothing about the route's health.
func classify(r *capture.Record) (class, bool) {
	if r == nil || r.Route == "" {
		return class{}, false
	}
	switch r.Outcome {
	case capture.OutcomeClientClosed, capture.OutcomeBadRequest, capture.OutcomeUnauthorized,
		capture.OutcomeForbidden, capture.OutcomeNotFound, capture.OutcomeRateLimited,
		capture.OutcomeOverloaded, capture.OutcomeShutdown:
		return class{}, false
	}
	c := class{
		failed:   r.Failed(),
		contract: r.Contract.Verdict == capture.VerdictFail,
		r429:     is429(r),
		lat:      latIndex(r.LatencyMS),
	}
	c.ok = r.Outcome == capture.OutcomeOK && !c.contract
	c.tokens = recordTokens(r)
	if r.CostUSD != nil {
		c.cost, c.priced = *r.CostUSD, true
	}
	classifyGuard(r, &c)
	return c, true
}

func is429(r *capture.Record) bool {
	if r.Outcome == capture.OutcomeUpstream429 {
		return true
	}
	for i := range r.Attempts {
		if r.Attempts[i].Status == 429 {
			return true
		}
	}
	return false
}

func recordTokens(r *capture.Record) int64 {
	if t := r.Usage.PromptTokens + r.Usage.CompletionTokens; t > 0 {
		return int64(t)
	}
	return int64(r.Usage.TotalTokens)
}

// agg is the sum of a set of buckets.
type agg struct {
	n, failed, contract, r429, ok, tokOK int64
	tok                                  int64 // every request's tokens, for an incident's cost
	lat                                  [nLat]uint32
	// costOK sums cost_usd over the priced successes (okPriced); cost
	// over every priced record (priced), for an incident's cost.
	costOK   float64
	okPriced int64
	cost     float64
	priced   int64
	guard    guardAgg
}

func (a *agg) addRec(c *class) {
	a.n++
	if c.failed {
		a.failed++
	}
	if c.contract {
		a.contract++
	}
	if c.r429 {
		a.r429++
	}
	if c.ok {
		a.ok++
		a.tokOK += c.tokens
		if c.priced {
			a.okPriced++
			a.costOK += c.cost
		}
	}
	a.tok += c.tokens
	if c.priced {
		a.priced++
		a.cost += c.cost
	}
	a.lat[c.lat]++
	a.guard.add(c)
}

func (a *agg) addAgg(b *agg) {
	a.n += b.n
	a.failed += b.failed
	a.contract += b.contract
	a.r429 += b.r429
	a.ok += b.ok
	a.tokOK += b.tokOK
	a.tok += b.tok
	a.okPriced += b.okPriced
	a.costOK += b.costOK
	a.priced += b.priced
	a.cost += b.cost
	for i := range a.lat {
		a.lat[i] += b.lat[i]
	}
	a.guard.addAgg(&b.guard)
}

func (a *agg) subAgg(b *agg) {
	a.n -= b.n
	a.failed -= b.failed
	a.contract -= b.contract
	a.r429 -= b.r429
	a.ok -= b.ok
	a.tokOK -= b.tokOK
	a.tok -= b.tok
	a.okPriced -= b.okPriced
	a.costOK -= b.costOK
	a.priced -= b.priced
	a.cost -= b.cost
	for i := range a.lat {
		a.lat[i] -= b.lat[i]
	}
	a.guard.subAgg(&b.guard)
}

// bad returns the count of records bad for a rate signal.
func (a *agg) bad(sig int) int64 {
	switch sig {
	case sigContract:
		return a.contract
	case sig429:
		return a.r429
	case sigError:
		return a.failed
	case sigRefusal:
		return a.guard.refusal
	case sigPII:
		return a.guard.pii
	}
	return 0
}

// p99 returns the upper bound of the histogram bucket holding the 99th
// percentile, or 0 without data. It walks from the slow end: at most 1%
// of the records lie above the answer.
func (a *agg) p99() float64 {
	if a.n <= 0 {
		return 0
	}
	tail := a.n - int64(math.Ceil(0.99*float64(a.n))) // records allowed above
	var acc int64
	for i := latOverflow; i > 0; i-- {
		acc += int64(a.lat[i])
		if acc > tail {
			return latUpper(i)
		}
	}
	return latUpper(0)
}

// above returns how many latencies fall in buckets entirely above ms:
// bucket i starts at latUpper(i-1), so those after ms's own bucket.
func (a *agg) above(ms float64) int64 {
	var n int64
	for _, c := range a.lat[min(latIndex(ms)+1, nLat):] {
		n += int64(c)
	}
	return n
}

func (a *agg) tps() float64 {
	if a.ok == 0 {
		return 0
	}
	return float64(a.tokOK) / float64(a.ok)
}

// bucket is one slice of time of a series.
type bucket struct {
	idx int64 // absolute bucket number (time / width); -1 when empty
	agg
	// firstBad is the earliest ReceivedAt of a record bad for each rate
	// signal (indexed by sigContract, sig429, sigError).
	firstBad [3]time.Time
	// bad holds the records bad for any rate signal, in arrival order.
	bad []*capture.Record
	// before is the route's last successes when the bucket's first bad
	// record arrived.
	before []*capture.Record
}

func (b *bucket) reset(idx int64) {
	b.idx = idx
	b.agg = agg{}
	b.firstBad = [3]time.Time{}
	clear(b.bad)
	b.bad = b.bad[:0]
	clear(b.before)
	b.before = b.before[:0]
}

// series is a sliding window over buckets: cur sums the last nb buckets
// (the window), base the baselineWindows windows before it.
type series struct {
	ring []bucket
	nb   int64
	head int64
	cur  agg
	base agg
	keep bool // keep bad records and recent records (cohort series)

	recent    [recentPerSeries]*capture.Record
	recentPos int
}

func newSeries(nb int64, windows int, keep bool) *series {
	s := &series{ring: make([]bucket, nb*int64(1+windows)), nb: nb, head: -1, keep: keep}
	for i := range s.ring {
		s.ring[i].idx = -1
	}
	return s
}

func (s *series) slot(idx int64) *bucket { return &s.ring[idx%int64(len(s.ring))] }

// advance moves the window so that idx is its newest bucket.
func (s *series) advance(idx int64) {
	if s.head < 0 {
		s.head = idx
		s.slot(idx).reset(idx)
		return
	}
	if idx <= s.head {
		return
	}
	L := int64(len(s.ring))
	if idx-s.head >= L {
		for i := range s.ring {
			s.ring[i].reset(-1)
		}
		s.cur, s.base = agg{}, agg{}
		s.head = idx
		s.slot(idx).reset(idx)
		return
	}
	for i := s.head + 1; i <= idx; i++ {
		// Bucket i-nb leaves the window for the baseline.
		if j := i - s.nb; j >= 0 {
			if b := s.slot(j); b.idx == j {
				s.cur.subAgg(&b.agg)
				s.base.addAgg(&b.agg)
				// Records serve the window only: do not keep them alive.
				clear(b.bad)
				b.bad = b.bad[:0]
				clear(b.before)
				b.before = b.before[:0]
			}
		}
		// Bucket i-L leaves the baseline; its slot becomes bucket i.
		b := s.slot(i)
		if b.idx >= 0 && b.idx == i-L {
			s.base.subAgg(&b.agg)
		}
		b.reset(i)
	}
	s.head = idx
}

// inWindow calls f for the window's buckets, oldest first.
func (s *series) inWindow(f func(b *bucket)) {
	if s.head < 0 {
		return
	}
	for i := max(0, s.head-s.nb+1); i <= s.head; i++ {
		if b := s.slot(i); b.idx == i {
			f(b)
		}
	}
}

func (s *series) add(r *capture.Record, c *class, rd *routeDet) {
	b := s.slot(s.head)
	b.addRec(c)
	s.cur.addRec(c)
	if !s.keep {
		return
	}
	s.recent[s.recentPos] = r
	s.recentPos = (s.recentPos + 1) % recentPerSeries
	if !(c.failed || c.contract || c.r429) {
		return
	}
	for sig, bad := range [3]bool{c.contract, c.r429, c.failed} {
		if bad && (b.firstBad[sig].IsZero() || r.ReceivedAt.Before(b.firstBad[sig])) {
			b.firstBad[sig] = r.ReceivedAt
		}
	}
	if len(b.bad) == 0 {
		b.before = rd.appendSuccesses(b.before[:0])
	}
	if len(b.bad) < maxBadPerBucket {
		b.bad = append(b.bad, r)
	}
}

// recentRecords returns the series' latest records, oldest first.
func (s *series) recentRecords() []*capture.Record {
	out := make([]*capture.Record, 0, recentPerSeries)
	for i := range recentPerSeries {
		if r := s.recent[(s.recentPos+i)%recentPerSeries]; r != nil {
			out = append(out, r)
		}
	}
	return out
}
