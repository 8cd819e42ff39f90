package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
)

// soakSample is one reading of the gateway's resources.
type soakSample struct {
	t          float64 // seconds since the load started
	rss        int64
	fds        int
	threads    int
	goroutines float64 // NaN when the gateway exports no gauge
	redisMem   float64 // Redis used_memory in bytes; NaN when unread
}

// runSoak runs mixed streaming and non-streaming load with Redis limits on
// for a long time (30 minutes in the full profile) and checks that the
// gateway's RSS, goroutines and open files stay flat, no request fails,
// and every key Cairn leaves in Redis carries a TTL.
func runSoak(e *runEnv) error {
	dur := e.phase(30*time.Minute, 6*time.Second)
	rate := e.rate(100, 50)
	streams := pick(e, 50, 10)
	if e.o.Streams > 0 {
		streams = e.o.Streams
	}
	every := pick(e, 5*time.Second, 500*time.Millisecond)
	if dur < 2*time.Minute {
		every = min(every, max(dur/40, 100*time.Millisecond))
	}
	r := e.rep
	r.Params["duration_s"] = dur.Seconds()
	r.Params["rate_rps"] = rate
	r.Params["concurrent_streams"] = float64(streams)
	r.Params["sample_every_s"] = every.Seconds()

	e.progress("starting redis-server, the mock provider and cairn")
	redisAddr, redisProc, err := e.startRedis()
	if err != nil {
		return err
	}
	mockAddr, err := e.startMock(mockSpec{name: "mock", latency: 20 * time.Millisecond, chunkInterval: 30 * time.Millisecond, chunks: 20, prefix: "mock"})
	if err != nil {
		return err
	}
	schema, err := e.writeSchema()
	if err != nil {
		return err
	}
	key, secret := benchKey("soak", 1_000_000)
	key.TPM = 1_000_000_000
	gw, err := e.startGateway("cairn", configs.Config{
		Release:   "loadtest-soak",
		RedisURL:  "redis://" + redisAddr + "/0",
		Providers: []configs.Provider{{Name: "mock", BaseURL: "http://" + mockAddr + "/v1", Timeout: configs.Duration(30 * time.Second)}},
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
	client := newChatClient(gw.api, secret, 512)
	bodies := make([][]byte, 256)
	streamBodies := make([][]byte, 256)
	for i := range bodies {
		bodies[i] = benchBody("bench", "user-"+strconv.Itoa(i), false)
		streamBodies[i] = benchBody("bench", "user-"+strconv.Itoa(i), true)
	}
	sc := NewStreamClient(streams)
	defer sc.CloseIdle()
	hdr := http.Header{"Authorization": {"Bearer " + secret}}
	streamURL := "http://" + gw.api + "/v1/chat/completions"

	e.progress("%s of %g RPS non-streaming plus %d concurrent streams, sampling every %s", dur, rate, streams, every)
	start := time.Now()
	var samples []soakSample
	var sampleMu sync.Mutex
	sampleCtx, stopSampling := context.WithCancel(e.ctx)
	defer stopSampling()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		hc := &http.Client{Timeout: 2 * time.Second}
		defer hc.CloseIdleConnections()
		rdb := redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1})
		defer rdb.Close()
		t := time.NewTicker(every)
		defer t.Stop()
		lastProgress := time.Now()
		for {
			ps, err := readProc(gw.child.pid())
			if err == nil {
				s := soakSample{t: time.Since(start).Seconds(), rss: ps.RSS, fds: ps.FDs, threads: ps.Threads,
					goroutines: goroutines(sampleCtx, hc, gw.admin), redisMem: redisUsedMemory(sampleCtx, rdb)}
				sampleMu.Lock()
				if len(samples) < maxProcSamples {
					samples = append(samples, s)
				}
				sampleMu.Unlock()
				if time.Since(lastProgress) >= pick(e, time.Minute, 5*time.Second) {
					lastProgress = time.Now()
					e.progress("%s: RSS %.1f MiB, %d open files, %s goroutines", time.Since(start).Round(time.Second), mib(ps.RSS), ps.FDs, formatValue(s.goroutines, ""))
				}
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	var openRes, streamRes Result
	var broken atomic.Int64
	var lw sync.WaitGroup
	lw.Add(2)
	go func() {
		defer lw.Done()
		openRes = OpenLoop{Rate: rate, Duration: dur, MaxInFlight: openMaxInFlight}.Run(e.ctx, func(ctx context.Context, seq int) error {
			o, err := client.post(ctx, bodies[seq%len(bodies)])
			if err != nil {
				return err
			}
			if o.status != 200 {
				return statusError(o)
			}
			return nil
		})
	}()
	go func() {
		defer lw.Done()
		streamRes = ClosedLoop{Workers: streams, Duration: dur, Drain: 30 * time.Second}.Run(e.ctx, func(ctx context.Context, seq int) error {
			if seq < streams {
				sleepCtx(ctx, time.Duration(seq)*time.Second/time.Duration(streams))
			}
			_, err := sc.Do(ctx, streamURL, hdr, streamBodies[seq%len(streamBodies)])
			if errors.Is(err, ErrBrokenStream) {
				broken.Add(1)
			}
			return err
		})
	}()
	lw.Wait()
	// Let the gateway settle, then take the last sample.
	sleepCtx(e.ctx, pick(e, 5*time.Second, 500*time.Millisecond))
	stopSampling()
	wg.Wait()
	if err := e.ctx.Err(); err != nil {
		return err
	}
	if err := alive(gw.child, redisProc); err != nil {
		return err
	}

	keys, noTTL, err := redisTTLs(e.ctx, redisAddr)
	if err != nil {
		return err
	}

	// Flatness: the median of the first tenth after a tenth of warm-up
	// against the median of the last tenth.
	sampleMu.Lock()
	ss := append([]soakSample(nil), samples...)
	sampleMu.Unlock()
	if len(ss) == 0 {
		return gw.child.failure("could not be sampled (/proc unreadable)")
	}
	total := ss[len(ss)-1].t
	window := func(from, to float64, f func(soakSample) float64) float64 {
		var xs []float64
		for _, s := range ss {
			if s.t >= from && s.t <= to && finite(f(s)) {
				xs = append(xs, f(s))
			}
		}
		if len(xs) == 0 {
			return nan()
		}
		return median(xs)
	}
	res := Table{
		Title: fmt.Sprintf("cairn resources over %s (medians of the 2nd tenth vs the last tenth)", dur),
		Columns: []Column{
			{Key: "start", Title: "start", Unit: ""},
			{Key: "end", Title: "end", Unit: ""},
			{Key: "max", Title: "max", Unit: ""},
			{Key: "growth", Title: "growth", Unit: "%"},
		},
	}
	type metric struct {
		name  string
		f     func(soakSample) float64
		slack float64 // absolute growth tolerated on top of 10%
	}
	metrics := []metric{
		{"RSS (MiB)", func(s soakSample) float64 { return mib(s.rss) }, 16},
		{"goroutines", func(s soakSample) float64 { return s.goroutines }, 50},
		{"open files", func(s soakSample) float64 { return float64(s.fds) }, 20},
		{"threads", func(s soakSample) float64 { return float64(s.threads) }, 4},
		// Informational: the capture stream grows to its cap first.
		{"Redis memory (MiB)", func(s soakSample) float64 { return s.redisMem / (1 << 20) }, -1},
	}
	var chartRSS, chartCounts Chart
	chartRSS = Chart{Title: "cairn RSS and Redis memory during the soak", YLabel: "MiB", XLabel: "seconds since the load started"}
	chartCounts = Chart{Title: "cairn goroutines, open files and threads during the soak", YLabel: "count", XLabel: "seconds since the load started"}
	for i, m := range metrics {
		startV := window(total*0.1, total*0.2, m.f)
		endV := window(total*0.9, total, m.f)
		maxV := nan()
		ser := Series{Name: m.name}
		for _, s := range ss {
			if v := m.f(s); finite(v) {
				if !finite(maxV) || v > maxV {
					maxV = v
				}
				ser.Points = append(ser.Points, Point{T: s.t, V: v})
			}
		}
		growth := 100 * (endV - startV) / startV
		res.add(m.name, map[string]float64{"start": startV, "end": endV, "max": maxV, "growth": growth})
		if i == 0 || m.slack < 0 {
			chartRSS.Series = append(chartRSS.Series, ser)
		} else {
			chartCounts.Series = append(chartCounts.Series, ser)
		}
		if !finite(startV) {
			r.note("%s: not measured (the gateway exports no goroutine gauge on /metrics)", m.name)
			continue
		}
		if m.slack < 0 {
			continue
		}
		limit := startV*1.1 + m.slack
		r.target(m.name+" flat: end vs start", fmt.Sprintf("<= %.0f (start +10%% +%g)", limit, m.slack), endV, "", endV <= limit)
	}
	load := Table{
		Title: "load",
		Columns: []Column{
			{Key: "sent", Title: "sent", Unit: "count"},
			{Key: "ok", Title: "ok", Unit: "count"},
			{Key: "errors", Title: "errors", Unit: "count"},
			{Key: "p50", Title: "p50", Unit: "ms"},
			{Key: "p99", Title: "p99", Unit: "ms"},
		},
	}
	ns := openRes.Latency.Summary()
	load.add("non-streaming", map[string]float64{"sent": float64(openRes.Sent), "ok": float64(openRes.OK), "errors": float64(openRes.Errors), "p50": ms(ns.P50), "p99": ms(ns.P99)})
	ts := sc.FirstChunk.Summary()
	load.add("streams (TTFT)", map[string]float64{"sent": float64(streamRes.Sent), "ok": float64(streamRes.OK), "errors": float64(streamRes.Errors), "p50": ms(ts.P50), "p99": ms(ts.P99)})
	rk := Table{
		Title:   "keys in Redis after the soak",
		Columns: []Column{{Key: "n", Title: "keys", Unit: "count"}},
	}
	rk.add("all", map[string]float64{"n": float64(keys)})
	rk.add("without a TTL", map[string]float64{"n": float64(len(noTTL))})
	r.Tables = append(r.Tables, res, load, rk)
	r.Charts = append(r.Charts, chartRSS, chartCounts)
	if len(noTTL) > 0 {
		r.note("Redis keys without a TTL: %s", strings.Join(noTTL, ", "))
	}
	for _, x := range []Result{openRes, streamRes} {
		if len(x.ErrorSamples) > 0 {
			r.note("errors: %s", joinSamples(x.ErrorSamples))
		}
	}
	r.invariant("requests failed", "= 0", float64(openRes.Errors+streamRes.Errors), "count", openRes.Errors+streamRes.Errors == 0)
	r.invariant("broken streams", "= 0", float64(broken.Load()), "count", broken.Load() == 0)
	r.target("Redis keys without a TTL", "= 0", float64(len(noTTL)), "count", len(noTTL) == 0)
	return nil
}

// redisUsedMemory reads used_memory from INFO memory; NaN when unread.
func redisUsedMemory(ctx context.Context, rdb *redis.Client) float64 {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := rdb.Info(cctx, "memory").Result()
	if err != nil {
		return nan()
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				return n
			}
		}
	}
	return nan()
}

// goroutines reads go_goroutines (or cairn_goroutines) from the admin
// /metrics; NaN when absent or unreachable.
func goroutines(ctx context.Context, hc *http.Client, admin string) float64 {
	return scrapeMetric(ctx, hc, admin, "go_goroutines", "cairn_goroutines")
}

// scrapeMetric reads the first of names (unlabelled) from the admin
// /metrics; NaN when absent or unreachable.
func scrapeMetric(ctx context.Context, hc *http.Client, admin string, names ...string) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return nan()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nan()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nan()
	}
	return metricValue(b, names...)
}

// metricValue returns the first sample of any of names (no labels) in a
// Prometheus text exposition; NaN when absent.
func metricValue(b []byte, names ...string) float64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		for _, n := range names {
			if name == n {
				if v, err := strconv.ParseFloat(strings.Fields(val)[0], 64); err == nil {
					return v
				}
			}
		}
	}
	return nan()
}

// redisTTLs scans every key and returns the count and the names (sorted, at
// most 20) of those without a TTL.
func redisTTLs(ctx context.Context, addr string) (int, []string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	var cursor uint64
	n := 0
	var noTTL []string
	for range 100_000 {
		keys, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return 0, nil, fmt.Errorf("scan redis keys: %w", err)
		}
		for _, k := range keys {
			n++
			ttl, err := rdb.PTTL(ctx, k).Result()
			if err != nil {
				return 0, nil, fmt.Errorf("redis ttl: %w", err)
			}
			// go-redis v9 reports "no TTL" as -1 and a key gone since
			// the scan as -2 (raw, not scaled to a unit).
			if ttl == -1 || ttl == -time.Millisecond {
				noTTL = append(noTTL, k)
			}
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	sort.Strings(noTTL)
	if len(noTTL) > 20 {
		noTTL = append(noTTL[:20], fmt.Sprintf("… %d more", len(noTTL)-20))
	}
	return n, noTTL, nil
}
