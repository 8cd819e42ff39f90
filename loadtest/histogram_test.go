package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHistogramLayout(t *testing.T) {
	if got := histIndex(int64(HistogramMax)) + 1; got != histBuckets {
		t.Fatalf("histIndex(HistogramMax)+1 = %d; want histBuckets %d", got, histBuckets)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := int64(math.Exp(rng.Float64() * math.Log(float64(HistogramMax))))
		i := histIndex(v)
		low, width := histBucket(i)
		if v < low || v >= low+width {
			t.Fatalf("histIndex(%d) = %d with [%d, %d)", v, i, low, low+width)
		}
		if low >= 1000 && float64(width)/float64(low) > 1.0/128 {
			t.Fatalf("bucket %d width %d / low %d > 1/128", i, width, low)
		}
	}
	// Buckets tile the range without gaps.
	for i := 1; i < histBuckets; i++ {
		pl, pw := histBucket(i - 1)
		if l, _ := histBucket(i); l != pl+pw {
			t.Fatalf("bucket %d starts at %d; previous ends at %d", i, l, pl+pw)
		}
	}
}

func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func TestHistogramQuantileAccuracy(t *testing.T) {
	dists := []struct {
		name string
		gen  func(r *rand.Rand) time.Duration
	}{
		{"lognormal ms", func(r *rand.Rand) time.Duration {
			return time.Duration(math.Exp(r.NormFloat64()*0.8 + math.Log(2e6)))
		}},
		{"uniform 1µs-10s", func(r *rand.Rand) time.Duration {
			return time.Microsecond + time.Duration(r.Int64N(int64(10*time.Second)))
		}},
		{"bimodal", func(r *rand.Rand) time.Duration {
			if r.IntN(100) < 3 {
				return 200*time.Millisecond + time.Duration(r.Int64N(int64(50*time.Millisecond)))
			}
			return 300*time.Microsecond + time.Duration(r.Int64N(int64(100*time.Microsecond)))
		}},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 11))
			h := NewHistogram()
			vals := make([]time.Duration, 50000)
			var sum time.Duration
			for i := range vals {
				vals[i] = d.gen(rng)
				sum += vals[i]
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
				got, want := h.Quantile(q), exactQuantile(vals, q)
				if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
					t.Errorf("Quantile(%v) = %v; want %v ±1%% (off %.3f%%)", q, got, want, rel*100)
				}
			}
			if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] || h.Count() != int64(len(vals)) {
				t.Errorf("max/min/count = %v/%v/%d; want %v/%v/%d", h.Max(), h.Min(), h.Count(), vals[len(vals)-1], vals[0], len(vals))
			}
			if want := sum / time.Duration(len(vals)); h.Mean() != want {
				t.Errorf("Mean() = %v; want %v", h.Mean(), want)
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	h := NewHistogram()
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Errorf("empty histogram = %+v", h.Summary())
	}
	h.Record(-time.Second)
	h.Record(time.Hour)
	if h.Min() != 0 || h.Max() != time.Hour || h.Quantile(1) != time.Hour {
		t.Errorf("min %v max %v p100 %v; want 0, 1h, 1h", h.Min(), h.Max(), h.Quantile(1))
	}
	if p := h.Quantile(0.9); p < HistogramMax*99/100 || p > time.Hour {
		t.Errorf("Quantile(0.9) = %v; want ≈ HistogramMax", p)
	}
}

func TestHistogramMergeAndConcurrency(t *testing.T) {
	whole := NewHistogram()
	parts := []*Histogram{NewHistogram(), NewHistogram(), NewHistogram(), NewHistogram()}
	var wg sync.WaitGroup
	for g, p := range parts {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for range 20000 {
				d := time.Duration(rng.Int64N(int64(time.Second)))
				p.Record(d)
				whole.Record(d) // shared: concurrent Record
			}
		})
	}
	wg.Wait()
	merged := NewHistogram()
	for _, p := range parts {
		merged.Merge(p)
	}
	merged.Merge(NewHistogram())
	if merged.Summary() != whole.Summary() || merged.Min() != whole.Min() {
		t.Errorf("merged %+v; want %+v", merged.Summary(), whole.Summary())
	}
	if whole.Count() != 80000 {
		t.Errorf("Count() = %d; want 80000", whole.Count())
	}
}
