package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: log-linear buckets in nanoseconds, HDR style. Values
// below 2^(subBits+1) ns each have their own bucket; above, every power of
// two is split into 2^subBits equal buckets, so a bucket's width is at most
// 1/128 of its lower bound and a quantile (reported at the bucket midpoint)
// is within 0.4% of the true value. Values above HistogramMax share the top
// bucket (Max stays exact).
const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits
	// HistogramMax is the largest latency a Histogram resolves (10 minutes).
	HistogramMax = 10 * time.Minute
)

// histBuckets is histIndex(HistogramMax)+1 (asserted by a test).
const histBuckets = 4236

// histIndex returns the bucket of v ≥ 0.
func histIndex(v int64) int {
	if v < 2*histSubCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	return shift*histSubCount + int(v>>shift)
}

// histBucket returns the lower bound and width of bucket i.
func histBucket(i int) (low, width int64) {
	if i < 2*histSubCount {
		return int64(i), 1
	}
	shift := i/histSubCount - 1
	m := int64(i%histSubCount + histSubCount)
	return m << shift, 1 << shift
}

// Histogram records latencies from 1µs to 10 min with ≤ 1% relative error.
// Record is lock-free and safe from many goroutines; reads (Quantile, Max,
// ...) may run concurrently with Record and see a moment's snapshot. Create
// with NewHistogram; it is about 35 KiB.
type Histogram struct {
	counts []atomic.Int64
	count  atomic.Int64
	sum    atomic.Int64 // ns
	min    atomic.Int64 // ns + 1; 0 = unset
	max    atomic.Int64 // ns
}

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]atomic.Int64, histBuckets)}
}

// Record adds one observation; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[histIndex(min(v, int64(HistogramMax)))].Add(1)
	h.count.Add(1)
	h.sum.Add(v)
	h.observeMinMax(v, v)
}

func (h *Histogram) observeMinMax(lo, hi int64) {
	for {
		cur := h.max.Load()
		if hi <= cur || h.max.CompareAndSwap(cur, hi) {
			break
		}
	}
	for {
		cur := h.min.Load()
		if (cur != 0 && lo+1 >= cur) || h.min.CompareAndSwap(cur, lo+1) {
			break
		}
	}
}

// Count returns the number of observations.
func (h *Histogram) Count() int64 { return h.count.Load() }

// Max returns the largest observation (exact), 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min returns the smallest observation (exact), 0 when empty.
func (h *Histogram) Min() time.Duration {
	if m := h.min.Load(); m > 0 {
		return time.Duration(m - 1)
	}
	return 0
}

// Mean returns the mean observation (exact), 0 when empty.
func (h *Histogram) Mean() time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the q-quantile (q in [0, 1]; 0.99 is p99): the value
// below or at which a q share of observations lie, within 0.4% (clamped to
// [Min, Max], so Quantile(1) is Max). It returns 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	if q >= 1 {
		return h.Max()
	}
	q = max(q, 0)
	rank := max(int64(math.Ceil(q*float64(n))), 1)
	var cum int64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= rank {
			low, width := histBucket(i)
			v := time.Duration(low + width/2)
			return min(max(v, h.Min()), h.Max())
		}
	}
	return h.Max()
}

// Merge adds every observation of o to h. o may be recorded concurrently;
// the merge then takes a moment's snapshot of it.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count.Load() == 0 {
		return
	}
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.count.Add(o.count.Load())
	h.sum.Add(o.sum.Load())
	h.observeMinMax(int64(o.Min()), int64(o.Max()))
}

// Summary is a Histogram's headline figures, for reports.
type Summary struct {
	Count int64         `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary returns the count, mean, p50, p90, p99, p99.9 and max.
func (h *Histogram) Summary() Summary {
	return Summary{
		Count: h.Count(), Mean: h.Mean(),
		P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99), P999: h.Quantile(0.999),
		Max: h.Max(),
	}
}
