package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// streamRound is what one streaming phase measured for one target.
type streamRound struct {
	ttft, gaps, total  Summary
	ok, broken, failed int
	maxConc            int64
	rssPerStream       float64 // KiB; NaN when not measured
	cpuPerStream       float64 // ms; NaN when not measured
	peakRSS            int64
	ttftTimeline       *timeline
	errSamples         []string
}

// timeline buckets observations by time since its start, for charts.
// Safe for concurrent use; bounded to maxBuckets buckets.
type timeline struct {
	start time.Time
	width time.Duration

	mu      sync.Mutex
	buckets []*Histogram
}

const maxTimelineBuckets = 3600

func newTimeline(width time.Duration) *timeline {
	return &timeline{start: time.Now(), width: width}
}

func (t *timeline) record(at time.Time, d time.Duration) {
	i := int(at.Sub(t.start) / t.width)
	if i < 0 || i >= maxTimelineBuckets {
		return
	}
	t.mu.Lock()
	for len(t.buckets) <= i {
		t.buckets = append(t.buckets, nil)
	}
	if t.buckets[i] == nil {
		t.buckets[i] = NewHistogram()
	}
	h := t.buckets[i]
	t.mu.Unlock()
	h.Record(d)
}

// series returns the q-quantile (ms) of each non-empty bucket.
func (t *timeline) series(name string, q float64) Series {
	s := Series{Name: name}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, h := range t.buckets {
		if h == nil || h.Count() == 0 {
			continue
		}
		s.Points = append(s.Points, Point{T: (float64(i) + 0.5) * t.width.Seconds(), V: ms(h.Quantile(q))})
	}
	return s
}

// runStreaming holds N SSE streams open at once with realistic token
// pacing through Cairn, the stdlib reverse proxy and the mock directly:
// time to first token, inter-chunk gaps, broken streams, and Cairn's RSS
// and CPU per stream.
func runStreaming(e *runEnv) error {
	n := pick(e, 1000, 50)
	if e.o.Streams > 0 {
		n = e.o.Streams
	}
	dur := e.phase(10*time.Second, 2*time.Second)
	interval := pick(e, 50*time.Millisecond, 30*time.Millisecond)
	latency := 20 * time.Millisecond
	chunks := 20
	rounds := pick(e, 2, 1)
	ramp := pick(e, 2*time.Second, 300*time.Millisecond)
	r := e.rep
	r.Params["concurrent_streams"] = float64(n)
	r.Params["phase_s"] = dur.Seconds()
	r.Params["chunk_interval_ms"] = ms(interval)
	r.Params["mock_first_chunk_latency_ms"] = ms(latency)
	r.Params["chunks"] = float64(chunks)
	r.Params["rounds"] = float64(rounds)

	e.progress("starting the mock provider (%d chunks every %s), cairn and the stdlib reverse proxy", chunks, interval)
	mockAddr, err := e.startMock(mockSpec{name: "mock", latency: latency, chunkInterval: interval, chunks: chunks, prefix: "mock"})
	if err != nil {
		return err
	}
	if !e.mockSupportsChunks() {
		chunks = DefaultMockChunks
		r.Params["chunks"] = float64(chunks)
	}
	schema, err := e.writeSchema()
	if err != nil {
		return err
	}
	key, secret := benchKey("bench", 0)
	gw, err := e.startGateway("cairn", configs.Config{
		Release:   "loadtest",
		Providers: []configs.Provider{{Name: "mock", BaseURL: "http://" + mockAddr + "/v1", Timeout: configs.Duration(30 * time.Second), MaxConns: 4 * n}},
		Keys:      []configs.Key{key},
		Routes: []configs.Route{{
			Name:     "bench",
			Targets:  []configs.Target{{Provider: "mock", Model: "mock-model"}},
			Contract: configs.Contract{Mode: configs.ModeObserve, SchemaFile: schema},
		}},
	})
	if err != nil {
		return err
	}
	refAddr, ref, err := e.startReference("stdlib-proxy", "http://"+mockAddr)
	if err != nil {
		return err
	}
	type target struct {
		name string
		addr string
		proc *child
	}
	targets := []target{{"direct", mockAddr, nil}, {"stdlib-proxy", refAddr, ref}, {"cairn", gw.api, gw.child}}
	hdr := http.Header{"Authorization": {"Bearer " + secret}}

	results := map[string][]streamRound{}
	for round := range rounds {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			tag := fmt.Sprintf("round %d/%d %s", round+1, rounds, t.name)
			e.progress("%s: %d concurrent streams for %s", tag, n, dur)
			res := e.streamPhase("http://"+t.addr+"/v1/chat/completions", hdr, t.proc, n, dur, ramp)
			e.progress("%s: %d streams, TTFT p50 %.1f ms p99 %.1f ms, gap p99 %.1f ms, %d broken, %d failed, max %d concurrent",
				tag, res.ok, ms(res.ttft.P50), ms(res.ttft.P99), ms(res.gaps.P99), res.broken, res.failed, res.maxConc)
			results[t.name] = append(results[t.name], res)
			if err := e.ctx.Err(); err != nil {
				return err
			}
			if err := alive(gw.child, ref); err != nil {
				return err
			}
		}
	}

	tab := Table{
		Title: fmt.Sprintf("%d concurrent SSE streams (%d chunks, %s apart): %s", n, chunks, interval, roundsPhrase(rounds)),
		Columns: []Column{
			{Key: "streams", Title: "streams", Unit: "count"},
			{Key: "max_conc", Title: "max open", Unit: "count"},
			{Key: "ttft_p50", Title: "TTFT p50", Unit: "ms"},
			{Key: "ttft_p99", Title: "TTFT p99", Unit: "ms"},
			{Key: "gap_p50", Title: "gap p50", Unit: "ms"},
			{Key: "gap_p99", Title: "gap p99", Unit: "ms"},
			{Key: "added_ttft_p50", Title: "added TTFT p50", Unit: "ms"},
			{Key: "added_ttft_p99", Title: "added TTFT p99", Unit: "ms"},
			{Key: "added_gap_p99", Title: "added gap p99", Unit: "ms"},
			{Key: "broken", Title: "broken", Unit: "count"},
			{Key: "failed", Title: "failed", Unit: "count"},
		},
	}
	resTab := Table{
		Title: "proxy resources while streaming",
		Columns: []Column{
			{Key: "rss_per_stream", Title: "RSS/stream", Unit: "KiB"},
			{Key: "peak_rss", Title: "peak RSS", Unit: "MiB"},
			{Key: "cpu_per_stream", Title: "CPU/stream", Unit: "ms"},
		},
	}
	chart := Chart{Title: "time to first token p99 (last round), 1 s buckets", YLabel: "TTFT (ms)", XLabel: "seconds into the phase"}
	direct := results["direct"]
	figures := map[string]map[string]float64{}
	for _, t := range targets {
		rs := results[t.name]
		col := func(f func(streamRound) float64) float64 {
			xs := make([]float64, 0, len(rs))
			for _, x := range rs {
				xs = append(xs, f(x))
			}
			return median(xs)
		}
		v := map[string]float64{
			"streams":  col(func(x streamRound) float64 { return float64(x.ok) }),
			"max_conc": col(func(x streamRound) float64 { return float64(x.maxConc) }),
			"ttft_p50": col(func(x streamRound) float64 { return ms(x.ttft.P50) }),
			"ttft_p99": col(func(x streamRound) float64 { return ms(x.ttft.P99) }),
			"gap_p50":  col(func(x streamRound) float64 { return ms(x.gaps.P50) }),
			"gap_p99":  col(func(x streamRound) float64 { return ms(x.gaps.P99) }),
		}
		broken, failed := 0, 0
		for i, x := range rs {
			broken += x.broken
			failed += x.failed
			if len(x.errSamples) > 0 {
				r.note("%s round %d errors: %s", t.name, i+1, joinSamples(x.errSamples))
			}
		}
		v["broken"], v["failed"] = float64(broken), float64(failed)
		if t.name != "direct" {
			diff := func(f func(streamRound) time.Duration) float64 {
				xs := make([]float64, 0, len(rs))
				for i := range rs {
					xs = append(xs, ms(f(rs[i]))-ms(f(direct[i])))
				}
				return median(xs)
			}
			v["added_ttft_p50"] = diff(func(x streamRound) time.Duration { return x.ttft.P50 })
			v["added_ttft_p99"] = diff(func(x streamRound) time.Duration { return x.ttft.P99 })
			v["added_gap_p99"] = diff(func(x streamRound) time.Duration { return x.gaps.P99 })
			resTab.add(t.name, map[string]float64{
				"rss_per_stream": col(func(x streamRound) float64 { return x.rssPerStream }),
				"peak_rss":       col(func(x streamRound) float64 { return mib(x.peakRSS) }),
				"cpu_per_stream": col(func(x streamRound) float64 { return x.cpuPerStream }),
			})
		}
		tab.add(t.name, v)
		figures[t.name] = v
		chart.Series = append(chart.Series, rs[len(rs)-1].ttftTimeline.series(t.name, 0.99))
	}
	r.Tables = append(r.Tables, tab, resTab)
	r.Charts = append(r.Charts, chart)
	cairn, direct0 := figures["cairn"], figures["direct"]
	r.invariant(fmt.Sprintf("broken or failed streams through cairn at %d concurrent", n), "= 0", cairn["broken"]+cairn["failed"], "count", cairn["broken"]+cairn["failed"] == 0)
	r.invariant("streams reached the wanted concurrency through cairn", fmt.Sprintf(">= %d", n), cairn["max_conc"], "count", cairn["max_conc"] >= float64(n))
	r.invariant("broken or failed streams calling the mock directly (the harness)", "= 0", direct0["broken"]+direct0["failed"], "count", direct0["broken"]+direct0["failed"] == 0)
	r.note("TTFT is measured from sending the request to the first data event; the mock waits %s before it, then sends a chunk every %s", latency, interval)
	r.note("RSS/stream = (peak RSS during the phase - RSS before it) / streams open at the peak; a stream is broken when it errors or lacks [DONE]")
	return nil
}

// streamPhase keeps n streams open against url for dur (each worker starts
// a new stream when its last one ends) and measures them.
func (e *runEnv) streamPhase(url string, hdr http.Header, proc *child, n int, dur, ramp time.Duration) streamRound {
	out := streamRound{rssPerStream: nan(), cpuPerStream: nan()}
	sc := NewStreamClient(n)
	defer sc.CloseIdle()
	var inflight, maxInflight atomic.Int64
	var broken, failed atomic.Int64
	var idle procSample
	var sampler *procSampler
	cpu0 := cpuOf(proc)
	if proc != nil {
		idle, _ = readProc(proc.pid())
		sampler = startSampler(proc.pid(), 100*time.Millisecond)
	}
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = benchBody("bench", "user-"+strconv.Itoa(i), true)
	}
	out.ttftTimeline = newTimeline(time.Second)
	do := func(ctx context.Context, seq int) error {
		if seq < n && ramp > 0 {
			if !sleepCtx(ctx, time.Duration(seq)*ramp/time.Duration(n)) {
				return ctx.Err()
			}
		}
		cur := inflight.Add(1)
		for {
			m := maxInflight.Load()
			if cur <= m || maxInflight.CompareAndSwap(m, cur) {
				break
			}
		}
		st, err := sc.Do(ctx, url, hdr, bodies[seq%len(bodies)])
		inflight.Add(-1)
		if err != nil {
			if errors.Is(err, ErrBrokenStream) {
				broken.Add(1)
			} else {
				failed.Add(1)
			}
			return err
		}
		out.ttftTimeline.record(time.Now().Add(-st.Total), st.FirstChunk)
		return nil
	}
	res := ClosedLoop{Workers: n, Duration: dur, Drain: 30 * time.Second}.Run(e.ctx, do)
	cpu1 := cpuOf(proc)
	if sampler != nil {
		out.peakRSS, _ = sampler.stop()
		if maxC := maxInflight.Load(); maxC > 0 && idle.RSS > 0 {
			out.rssPerStream = float64(out.peakRSS-idle.RSS) / 1024 / float64(maxC)
		}
	}
	if res.OK > 0 && cpu0 >= 0 && cpu1 >= 0 {
		out.cpuPerStream = ms(cpu1-cpu0) / float64(res.OK)
	}
	out.ttft, out.gaps, out.total = sc.FirstChunk.Summary(), sc.Gaps.Summary(), sc.Total.Summary()
	out.ok = res.OK
	out.broken, out.failed = int(broken.Load()), int(failed.Load())
	out.maxConc = maxInflight.Load()
	out.errSamples = res.ErrorSamples
	return out
}
