package loadtest

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// bodyCase is one body size the body-size variant measures.
type bodyCase struct {
	name      string
	reqBytes  int // request body size (about)
	respBytes int // > 0: the reply is padded to about this size
}

// bodyCases are the sizes issue 15 names: 1 KB (the reference), 64 KB and
// 1 MB requests, and 256 KB responses to a 1 KB request.
var bodyCases = []bodyCase{
	{name: "1 KB request", reqBytes: 1 << 10},
	{name: "64 KB request", reqBytes: 64 << 10},
	{name: "1 MB request", reqBytes: 1 << 20},
	{name: "256 KB response", reqBytes: 1 << 10, respBytes: 256 << 10},
}

// runOverheadBodySize measures what each KB of body costs Cairn (capture
// on, a JSON Schema contract, json_object requests) and the bare fasthttp
// hop: closed-loop peak throughput and process CPU per request, in rounds
// whose medians are reported; CPU per KB is CPU per request over the KB
// of request and response body the request moved.
func runOverheadBodySize(e *runEnv) error {
	conns := pick(e, 16, 4)
	closedDur := e.phase(4*time.Second, time.Second)
	warm := pick(e, time.Second, 300*time.Millisecond)
	rounds := pick(e, 3, 1)
	r := e.rep
	r.Params["closed_connections"] = float64(conns)
	r.Params["closed_phase_s"] = closedDur.Seconds()
	r.Params["rounds"] = float64(rounds)
	r.Params["body_size_variant"] = 1

	e.progress("starting two mock providers (short and 256 KB replies), cairn and two bare fasthttp hops")
	small, err := e.startMock(mockSpec{name: "mock", prefix: "mock"})
	if err != nil {
		return err
	}
	big, err := e.startMock(mockSpec{name: "mock-big", prefix: "mockbig", replyBytes: 256 << 10})
	if err != nil {
		return err
	}
	schema, err := e.writeSchema()
	if err != nil {
		return err
	}
	key, secret := benchKey("bench", 0)
	contract := configs.Contract{Mode: configs.ModeObserve, SchemaFile: schema}
	gw, all, err := e.startSampledGateways(configs.Config{
		Release: "loadtest",
		Providers: []configs.Provider{
			{Name: "mock", BaseURL: "http://" + small + "/v1", Timeout: configs.Duration(30 * time.Second)},
			{Name: "mock-big", BaseURL: "http://" + big + "/v1", Timeout: configs.Duration(30 * time.Second)},
		},
		Keys: []configs.Key{key},
		Routes: []configs.Route{
			{Name: "bench", Targets: []configs.Target{{Provider: "mock", Model: "mock-model"}}, Contract: contract},
			{Name: "bench-big", Targets: []configs.Target{{Provider: "mock-big", Model: "mock-model"}}, Contract: contract},
		},
	})
	if err != nil {
		return err
	}
	hopSmall, hop1, err := e.startHop("hop", "http://"+small)
	if err != nil {
		return err
	}
	hopBig, hop2, err := e.startHop("hop-big", "http://"+big)
	if err != nil {
		return err
	}

	tab := Table{
		Title: fmt.Sprintf("CPU per KB of body: closed loop, %d connections; %s", conns, roundsPhrase(rounds)),
		Columns: []Column{
			{Key: "kb", Title: "body", Unit: "KB"},
			{Key: "hop_rps", Title: "hop peak", Unit: "rps"},
			{Key: "cairn_rps", Title: "cairn peak", Unit: "rps"},
			{Key: "hop_us", Title: "hop CPU/req", Unit: "µs"},
			{Key: "cairn_us", Title: "cairn CPU/req", Unit: "µs"},
			{Key: "hop_us_kb", Title: "hop CPU/KB", Unit: "µs"},
			{Key: "cairn_us_kb", Title: "cairn CPU/KB", Unit: "µs"},
			{Key: "ratio", Title: "cairn/hop CPU/KB", Unit: "x"},
			{Key: "all_ratio", Title: "all bodies/hop CPU/KB", Unit: "x"},
			{Key: "errors", Title: "errors", Unit: "count"},
		},
	}
	lost := Table{
		Title: fmt.Sprintf("records losing their bodies at the hop's peak rate: open loop at the hop's median peak for %s, after the closed loops", closedDur),
		Columns: []Column{
			{Key: "rate", Title: "hop peak", Unit: "rps"},
			{Key: "sent", Title: "cairn served", Unit: "rps"},
			{Key: "recorded", Title: "records", Unit: "count"},
			{Key: "lost", Title: "bodies lost", Unit: "count"},
			{Key: "all_sent", Title: "all bodies served", Unit: "rps"},
			{Key: "all_recorded", Title: "all bodies records", Unit: "count"},
			{Key: "all_lost", Title: "all bodies lost", Unit: "count"},
		},
	}
	chart := Chart{
		Title:  "CPU per KB of body (request + response), cairn vs the bare fasthttp hop",
		YLabel: "CPU µs per KB", XLabel: "KB of body per request",
		Series: []Series{{Name: "hop", Group: "hop"}, {Name: "cairn", Group: "cairn"}},
	}
	for _, bc := range bodyCases {
		model, hopAddr, hopProc := "bench", hopSmall, hop1
		if bc.respBytes > 0 {
			model, hopAddr, hopProc = "bench-big", hopBig, hop2
		}
		bodies := make([][]byte, 16)
		for i := range bodies {
			bodies[i] = paddedBenchBody(model, "user-"+strconv.Itoa(i), bc.reqBytes)
		}
		targets := []*overheadTarget{
			{name: "hop", client: newChatClient(hopAddr, secret, max(conns, 64)), proc: hopProc},
			{name: "cairn", client: newChatClient(gw.api, secret, max(conns, 64)), proc: gw.child, wantContract: "pass"},
			{name: "cairn-all-bodies", client: newChatClient(all.api, secret, max(conns, 64)), proc: all.child, wantContract: "pass"},
		}
		rps := map[string][]float64{}
		cpu := map[string][]float64{}
		errs := 0
		for round := range rounds {
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				res, err := e.measurePeak(t, bodies, fmt.Sprintf("%s round %d/%d %s", bc.name, round+1, rounds, t.name), conns, warm, closedDur)
				if err != nil {
					return err
				}
				rps[t.name] = append(rps[t.name], res.peak)
				cpu[t.name] = append(cpu[t.name], 1000*res.cpuPeak)
				errs += res.closedErrs
				if len(res.errSamples) > 0 {
					r.note("%s %s round %d errors: %s", bc.name, t.name, round+1, joinSamples(res.errSamples))
				}
				if err := alive(gw.child, all.child, hop1, hop2); err != nil {
					return err
				}
			}
		}
		kb := float64(len(bodies[0])+replySize(bc)) / 1024
		v := map[string]float64{
			"kb":        kb,
			"hop_rps":   median(rps["hop"]),
			"cairn_rps": median(rps["cairn"]),
			"hop_us":    median(cpu["hop"]),
			"cairn_us":  median(cpu["cairn"]),
			"errors":    float64(errs),
		}
		v["hop_us_kb"] = v["hop_us"] / kb
		v["cairn_us_kb"] = v["cairn_us"] / kb
		v["ratio"] = v["cairn_us_kb"] / v["hop_us_kb"]
		v["all_ratio"] = median(cpu["cairn-all-bodies"]) / kb / v["hop_us_kb"]
		tab.add(bc.name, v)
		lv := map[string]float64{"rate": v["hop_rps"]}
		for _, g := range []struct {
			prefix string
			t      *overheadTarget
			gw     *gateway
		}{{"", targets[1], gw}, {"all_", targets[2], all}} {
			l, err := e.bodiesLostAt(g.t, g.gw, bodies, v["hop_rps"], closedDur)
			if err != nil {
				return err
			}
			lv[g.prefix+"sent"], lv[g.prefix+"recorded"], lv[g.prefix+"lost"] = l.achieved, l.recorded, l.lost
			errs += l.errs
		}
		lost.add(bc.name, lv)
		r.target(bc.name+": cairn records losing their bodies at the hop's peak rate", "= 0", lv["lost"], "count", lv["lost"] == 0)
		chart.Series[0].Points = append(chart.Series[0].Points, Point{T: kb, V: v["hop_us_kb"]})
		chart.Series[1].Points = append(chart.Series[1].Points, Point{T: kb, V: v["cairn_us_kb"]})
		if bc.reqBytes > 1<<10 || bc.respBytes > 0 {
			r.target(bc.name+": cairn CPU per KB / hop's", "<= 2", v["ratio"], "x", v["ratio"] <= 2)
		}
		r.invariant(bc.name+": requests failed", "= 0", float64(errs), "count", errs == 0)
	}
	r.Tables = append(r.Tables, tab, lost)
	r.Charts = append(r.Charts, chart)
	r.note("body = request + response bytes per request; CPU/KB = the process's CPU time per request (user+system, /proc) over body KB, read the same way for the hop and cairn")
	r.note("%s", sampledGatewaysNote)
	r.note("bodies lost = records written without the bodies they were sampled to keep (cairn_capture_bodies_dropped_total: the capture byte budget was full); records = cairn_capture_admitted_total over the phase; a body sampled out is not lost")
	r.note("hop = a bare fasthttp reverse proxy of the same mock (HostClient.DoTimeout on the server's own request and response, nothing else)")
	return nil
}

// replySize is about the size of the mock's reply for bc.
func replySize(bc bodyCase) int {
	if bc.respBytes > 0 {
		return bc.respBytes
	}
	return 300 // a chat.completion with the default short JSON answer
}

// measurePeak runs a warm-up and a closed loop against t and returns the
// throughput and t's process CPU per request (ms).
func (e *runEnv) measurePeak(t *overheadTarget, bodies [][]byte, tag string, conns int, warm, closedDur time.Duration) (overheadRound, error) {
	out := overheadRound{cpuFixed: nan(), cpuPeak: nan()}
	ctx := e.ctx
	closed, err := e.peakPhase(t, overheadDo(t, bodies), tag, conns, warm, closedDur, &out)
	if err != nil {
		return out, err
	}
	e.progress("%s: %.0f req/s, %.1f µs CPU/req, %d errors", tag, closed.Throughput, 1000*out.cpuPeak, closed.Errors)
	// Let the backlog (GC, capture writes) settle before the next target.
	sleepCtx(ctx, pick(e, 500*time.Millisecond, 100*time.Millisecond))
	return out, ctx.Err()
}

// paddedBenchBody is benchBody with the user message padded with plain
// words so the body is about n bytes.
func paddedBenchBody(model, user string, n int) []byte {
	b := benchBody(model, user, false)
	if pad := n - len(b) - 64; pad > 0 {
		b = benchBodyWith(model, user, string(fillerText(pad)))
	}
	return b
}

// benchBodyWith is benchBody with one more user message, extra (plain
// text that needs no JSON escaping), before the others.
func benchBodyWith(model, user, extra string) []byte {
	b := benchBody(model, user, false)
	const at = `"messages":[`
	i := bytes.Index(b, []byte(at)) + len(at)
	out := make([]byte, 0, len(b)+len(extra)+40)
	out = append(out, b[:i]...)
	out = append(out, `{"role":"user","content":"`...)
	out = append(out, extra...)
	out = append(out, `"},`...)
	return append(out, b[i:]...)
}
