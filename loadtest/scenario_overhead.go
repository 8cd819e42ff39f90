package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// overheadTarget is one endpoint the overhead scenario measures.
type overheadTarget struct {
	name   string
	client *chatClient
	proc   *child // nil for the mock called directly
	// wantContract is the x-cairn-contract every response must carry ("" =
	// not checked).
	wantContract string
}

// overheadRound is what one round measured for one target.
type overheadRound struct {
	peak               float64 // closed-loop requests/s
	open               Summary // open-loop latency
	sent, errs, late   int
	closedErrs         int
	cpuFixed, cpuPeak  float64 // ms of CPU per request; NaN when not measured
	timeline           []Window
	errSamples         []string
	openRate, achieved float64
}

// runOverhead measures non-streaming chat through Cairn (capture and
// contracts on) against the mock called directly, a bare fasthttp hop and
// the standard library's ReverseProxy, in one run: peak throughput (closed
// loop) and latency at a fixed rate (open loop), in interleaved rounds
// whose medians are reported, plus the proxies' CPU time per request
// (process CPU time / requests, read the same way for all three) and RSS.
// With Options.BodySize it runs the body-size variant instead.
func runOverhead(e *runEnv) error {
	if e.o.BodySize {
		return runOverheadBodySize(e)
	}
	rate := e.rate(1000, 200)
	conns := pick(e, 64, 16)
	closedDur := e.phase(5*time.Second, time.Second)
	openDur := e.phase(10*time.Second, 1500*time.Millisecond)
	warm := pick(e, time.Second, 300*time.Millisecond)
	rounds := pick(e, 3, 1)
	r := e.rep
	r.Params["open_rate_rps"] = rate
	r.Params["closed_connections"] = float64(conns)
	r.Params["closed_phase_s"] = closedDur.Seconds()
	r.Params["open_phase_s"] = openDur.Seconds()
	r.Params["rounds"] = float64(rounds)
	r.Params["mock_latency_ms"] = 0

	e.progress("starting the mock provider, cairn (bodies sampled, and every body kept), the bare fasthttp hop and the stdlib reverse proxy")
	mockAddr, err := e.startMock(mockSpec{name: "mock", prefix: "mock"})
	if err != nil {
		return err
	}
	schema, err := e.writeSchema()
	if err != nil {
		return err
	}
	key, secret := benchKey("bench", 0)
	gwCfg, model := e.padLookup(configs.Config{
		Release:   "loadtest",
		Providers: []configs.Provider{{Name: "mock", BaseURL: "http://" + mockAddr + "/v1", Timeout: configs.Duration(30 * time.Second)}},
		Keys:      []configs.Key{key},
		Routes: []configs.Route{{
			Name:     "bench",
			Targets:  []configs.Target{{Provider: "mock", Model: "mock-model"}},
			Contract: configs.Contract{Mode: configs.ModeObserve, SchemaFile: schema},
		}},
	}, "bench")
	gw, all, err := e.startSampledGateways(gwCfg)
	if err != nil {
		return err
	}
	refAddr, ref, err := e.startReference("stdlib-proxy", "http://"+mockAddr)
	if err != nil {
		return err
	}
	hopAddr, hop, err := e.startHop("hop", "http://"+mockAddr)
	if err != nil {
		return err
	}
	poolConns := max(conns, 512)
	targets := []*overheadTarget{
		{name: "direct", client: newChatClient(mockAddr, secret, poolConns)},
		{name: "hop", client: newChatClient(hopAddr, secret, poolConns), proc: hop},
		{name: "stdlib-proxy", client: newChatClient(refAddr, secret, poolConns), proc: ref},
		{name: "cairn", client: newChatClient(gw.api, secret, poolConns), proc: gw.child, wantContract: "pass"},
		{name: "cairn-all-bodies", client: newChatClient(all.api, secret, poolConns), proc: all.child, wantContract: "pass"},
	}
	bodies := make([][]byte, 256)
	for i := range bodies {
		bodies[i] = benchBody(model, "user-"+strconv.Itoa(i), false)
	}

	results := map[string][]overheadRound{}
	for round := range rounds {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			res, err := e.measureOverhead(t, bodies, round, rounds, conns, warm, closedDur, openDur, rate)
			if err != nil {
				return err
			}
			results[t.name] = append(results[t.name], res)
			if err := alive(gw.child, all.child, ref, hop); err != nil {
				return err
			}
		}
	}

	// Resources of the proxies after the load.
	rss := map[string]procSample{}
	for _, t := range targets {
		if t.proc != nil {
			if s, err := readProc(t.proc.pid()); err == nil {
				rss[t.name] = s
			}
		}
	}

	tab := Table{
		Title: fmt.Sprintf("non-streaming chat: peak throughput (closed loop, %d connections) and latency at %g RPS (open loop); %s", conns, rate, roundsPhrase(rounds)),
		Columns: []Column{
			{Key: "peak_rps", Title: "peak", Unit: "rps"},
			{Key: "p50", Title: "p50", Unit: "ms"},
			{Key: "p90", Title: "p90", Unit: "ms"},
			{Key: "p99", Title: "p99", Unit: "ms"},
			{Key: "p999", Title: "p99.9", Unit: "ms"},
			{Key: "max", Title: "max", Unit: "ms"},
			{Key: "added_p50", Title: "added p50", Unit: "ms"},
			{Key: "added_p99", Title: "added p99", Unit: "ms"},
			{Key: "errors", Title: "errors", Unit: "count"},
		},
	}
	res := Table{
		Title: "proxy resources",
		Columns: []Column{
			{Key: "cpu_fixed_us", Title: fmt.Sprintf("CPU/req @%g RPS", rate), Unit: "µs"},
			{Key: "cpu_peak_us", Title: "CPU/req @peak", Unit: "µs"},
			{Key: "rss", Title: "RSS", Unit: "MiB"},
			{Key: "hwm", Title: "peak RSS", Unit: "MiB"},
		},
	}
	direct := results["direct"]
	summary := map[string]map[string]float64{}
	totalErrs := 0
	var chart Chart
	chart.Title = fmt.Sprintf("latency at %g RPS (open loop, last round), 1 s buckets", rate)
	chart.YLabel, chart.XLabel = "latency (ms)", "seconds into the phase"
	for _, t := range targets {
		rs := results[t.name]
		col := func(f func(overheadRound) float64) float64 {
			xs := make([]float64, 0, len(rs))
			for _, x := range rs {
				xs = append(xs, f(x))
			}
			return median(xs)
		}
		v := map[string]float64{
			"peak_rps": col(func(x overheadRound) float64 { return x.peak }),
			"p50":      col(func(x overheadRound) float64 { return ms(x.open.P50) }),
			"p90":      col(func(x overheadRound) float64 { return ms(x.open.P90) }),
			"p99":      col(func(x overheadRound) float64 { return ms(x.open.P99) }),
			"p999":     col(func(x overheadRound) float64 { return ms(x.open.P999) }),
			"max":      col(func(x overheadRound) float64 { return ms(x.open.Max) }),
		}
		errs := 0
		for i, x := range rs {
			errs += x.errs + x.closedErrs
			if len(x.errSamples) > 0 {
				r.note("%s round %d errors: %s", t.name, i+1, joinSamples(x.errSamples))
			}
			if x.late > 0 {
				r.note("%s round %d: %d requests found %d in flight and waited (their wait is in their latency)", t.name, i+1, x.late, openMaxInFlight)
			}
			if x.achieved < 0.95*x.openRate {
				r.note("%s round %d: open loop sent %.0f RPS of %.0f scheduled", t.name, i+1, x.achieved, x.openRate)
			}
		}
		totalErrs += errs
		v["errors"] = float64(errs)
		if t.name != "direct" {
			added := func(q func(Summary) time.Duration) float64 {
				xs := make([]float64, 0, len(rs))
				for i := range rs {
					xs = append(xs, ms(q(rs[i].open))-ms(q(direct[i].open)))
				}
				return median(xs)
			}
			v["added_p50"] = added(func(s Summary) time.Duration { return s.P50 })
			v["added_p99"] = added(func(s Summary) time.Duration { return s.P99 })
		}
		tab.add(t.name, v)
		summary[t.name] = v
		if t.proc != nil {
			rv := map[string]float64{
				"cpu_fixed_us": 1000 * col(func(x overheadRound) float64 { return x.cpuFixed }),
				"cpu_peak_us":  1000 * col(func(x overheadRound) float64 { return x.cpuPeak }),
			}
			if s, ok := rss[t.name]; ok {
				rv["rss"], rv["hwm"] = mib(s.RSS), mib(s.HWM)
			}
			res.add(t.name, rv)
			summary[t.name]["cpu_fixed_us"] = rv["cpu_fixed_us"]
			summary[t.name]["cpu_peak_us"] = rv["cpu_peak_us"]
		}
		last := rs[len(rs)-1]
		p50, p99 := latencySeries(t.name, last.timeline)
		chart.Series = append(chart.Series, p50, p99)
	}
	r.Tables = append(r.Tables, tab, res)
	r.Charts = append(r.Charts, chart)

	cairn, std, bare := summary["cairn"], summary["stdlib-proxy"], summary["hop"]
	tput := cairn["peak_rps"] / bare["peak_rps"]
	r.target("cairn peak throughput / bare fasthttp hop's", ">= 0.8", tput, "x", tput >= 0.8)
	cpu := cairn["cpu_peak_us"] / bare["cpu_peak_us"]
	r.target("cairn CPU per request / bare fasthttp hop's (at peak)", "<= 1.5", cpu, "x", cpu <= 1.5)
	r.target(fmt.Sprintf("cairn added p99 at %g RPS", rate),
		fmt.Sprintf("<= stdlib proxy's %.3f ms", std["added_p99"]), cairn["added_p99"], "ms", cairn["added_p99"] <= std["added_p99"])
	ratio := cairn["peak_rps"] / std["peak_rps"]
	r.target("cairn peak throughput / stdlib proxy's", ">= 2", ratio, "x", ratio >= 2)
	allBodies := summary["cairn-all-bodies"]
	r.note("with every body kept (body_sample_rate 1): cairn-all-bodies does %.2fx the hop's throughput at %.2fx its CPU per request",
		allBodies["peak_rps"]/bare["peak_rps"], allBodies["cpu_peak_us"]/bare["cpu_peak_us"])
	r.invariant("requests failed", "= 0", float64(totalErrs), "count", totalErrs == 0)
	r.note("added = the target's percentile minus the direct call's in the same round; all processes share %d CPUs with the load generator", r.Machine.CPUs)
	r.note("%s", sampledGatewaysNote)
	r.note("hop = a bare fasthttp reverse proxy (HostClient.DoTimeout on the server's own request and response, nothing else): the floor for a proxy built on fasthttp; stdlib-proxy = net/http/httputil.ReverseProxy")
	r.note("CPU/req = the process's CPU time (user+system, /proc) over the phase divided by the requests it served, read the same way for hop, stdlib-proxy and cairn")
	return nil
}

// measureOverhead runs the warm-up, closed-loop and open-loop phases for t.
func (e *runEnv) measureOverhead(t *overheadTarget, bodies [][]byte, round, rounds, conns int, warm, closedDur, openDur time.Duration, rate float64) (overheadRound, error) {
	out := overheadRound{cpuFixed: nan(), cpuPeak: nan(), openRate: rate}
	do := overheadDo(t, bodies)
	ctx := e.ctx
	tag := fmt.Sprintf("round %d/%d %s", round+1, rounds, t.name)
	closed, err := e.peakPhase(t, do, tag, conns, warm, closedDur, &out)
	if err != nil {
		return out, err
	}
	e.progress("%s closed loop: %.0f req/s, %d errors", tag, closed.Throughput, closed.Errors)
	if err := ctx.Err(); err != nil {
		return out, err
	}
	// Let the closed loop's backlog (GC, capture writes) settle.
	sleepCtx(ctx, pick(e, 500*time.Millisecond, 100*time.Millisecond))

	e.progress("%s open loop %g RPS %s", tag, rate, openDur)
	cpu0 := cpuOf(t.proc)
	open := OpenLoop{Rate: rate, Duration: openDur, MaxInFlight: openMaxInFlight, Window: time.Second}.Run(ctx, do)
	cpu1 := cpuOf(t.proc)
	out.open = open.Latency.Summary()
	out.sent, out.errs, out.late = open.Sent, open.Errors, open.Late
	out.timeline = open.Timeline
	out.errSamples = append(out.errSamples, open.ErrorSamples...)
	out.achieved = float64(open.Sent) / openDur.Seconds()
	out.cpuFixed = cpuPerRequest(cpu0, cpu1, open.OK)
	e.progress("%s open loop: p50 %.3f ms p99 %.3f ms, %d errors", tag, ms(out.open.P50), ms(out.open.P99), open.Errors)
	return out, ctx.Err()
}

// peakPhase warms t up with a closed loop of conns for warm, then measures
// its peak: a closed loop for closedDur, noting in out the throughput, the
// errors and t's process CPU per request (ms).
func (e *runEnv) peakPhase(t *overheadTarget, do func(context.Context, int) error, tag string, conns int, warm, closedDur time.Duration, out *overheadRound) (Result, error) {
	ClosedLoop{Workers: conns, Duration: warm}.Run(e.ctx, do)
	if err := e.ctx.Err(); err != nil {
		return Result{}, err
	}
	e.progress("%s closed loop %d conns %s", tag, conns, closedDur)
	cpu0 := cpuOf(t.proc)
	closed := ClosedLoop{Workers: conns, Duration: closedDur}.Run(e.ctx, do)
	cpu1 := cpuOf(t.proc)
	out.peak = closed.Throughput
	out.closedErrs = closed.Errors
	out.errSamples = append(out.errSamples, closed.ErrorSamples...)
	out.cpuPeak = cpuPerRequest(cpu0, cpu1, closed.OK)
	return closed, nil
}

// cpuPerRequest is the CPU time between two readings (cpuOf) in ms per
// request, NaN when a reading or the requests are missing.
func cpuPerRequest(cpu0, cpu1 time.Duration, ok int) float64 {
	if ok > 0 && cpu0 >= 0 && cpu1 >= 0 {
		return ms(cpu1-cpu0) / float64(ok)
	}
	return nan()
}

// overheadDo posts bodies in turn to t and checks each answer: 200 and,
// when t wants one, the x-cairn-contract verdict.
func overheadDo(t *overheadTarget, bodies [][]byte) func(ctx context.Context, seq int) error {
	return func(ctx context.Context, seq int) error {
		o, err := t.client.post(ctx, bodies[seq%len(bodies)])
		if err != nil {
			return err
		}
		if o.status != 200 {
			return statusError(o)
		}
		if t.wantContract != "" && o.contract != t.wantContract {
			return fmt.Errorf("x-cairn-contract %q; want %q", o.contract, t.wantContract)
		}
		return nil
	}
}

// cpuOf returns a child's CPU time so far, -1 when unknown.
func cpuOf(c *child) time.Duration {
	if c == nil {
		return -1
	}
	s, err := readProc(c.pid())
	if err != nil {
		return -1
	}
	return s.CPU
}
