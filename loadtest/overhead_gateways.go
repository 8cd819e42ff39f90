package loadtest

import (
	"fmt"
	"net/http"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// overheadBodySampleRate is the capture.body_sample_rate of the gateway the
// overhead targets are checked on: issue 15 measures Cairn "with capture on
// (bodies sampled)". Every record is still written, masked, priced and
// checked for PII leaks; only the masked request and response bodies are
// kept for this share of successful requests (failures always keep them).
const overheadBodySampleRate = 0.1

// sampledGatewaysNote says what the two Cairn targets of the overhead
// scenarios run with.
var sampledGatewaysNote = fmt.Sprintf("cairn runs with capture on, bodies sampled (body_sample_rate %g: every request is recorded, masked and checked for PII leaks in its response; the masked bodies are kept for that share of successes and every failure), and a JSON Schema contract on every response; cairn-all-bodies is the same with every body kept (body_sample_rate 1); requests ask for response_format json_object", overheadBodySampleRate)

// startSampledGateways starts two `cairn serve` processes from cfg: "cairn"
// with bodies sampled at overheadBodySampleRate and "cairn-all-bodies"
// keeping every masked body.
func (e *runEnv) startSampledGateways(cfg configs.Config) (sampled, all *gateway, err error) {
	rate, one := overheadBodySampleRate, 1.0
	cfg.Capture.BodySampleRate = &rate
	if sampled, err = e.startGateway("cairn", cfg); err != nil {
		return nil, nil, err
	}
	cfg.Capture.BodySampleRate = &one
	if all, err = e.startGateway("cairn-all-bodies", cfg); err != nil {
		return nil, nil, err
	}
	return sampled, all, nil
}

// lostBodies is what an open loop at a fixed rate left in a gateway's
// capture counters.
type lostBodies struct {
	achieved       float64 // requests/s sent
	recorded, lost float64 // records admitted; records that lost their bodies
	errs           int
}

// bodiesLostAt drives t (served by g) in an open loop at rate for d and
// reads from g's /metrics how many records it admitted and how many lost
// the bodies they were sampled to keep (the capture byte budget was full),
// once the capture queue has drained.
func (e *runEnv) bodiesLostAt(t *overheadTarget, g *gateway, bodies [][]byte, rate float64, d time.Duration) (lostBodies, error) {
	var out lostBodies
	if !(rate > 0) {
		return out, nil
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	const dropped = `cairn_capture_bodies_dropped_total{reason="queue_bytes"}`
	admitted0 := scrapeMetric(e.ctx, hc, g.admin, "cairn_capture_admitted_total")
	lost0 := scrapeMetric(e.ctx, hc, g.admin, dropped)
	e.progress("%s open loop at the hop's peak %.0f RPS %s", t.name, rate, d)
	res := OpenLoop{Rate: rate, Duration: d, MaxInFlight: openMaxInFlight}.Run(e.ctx, overheadDo(t, bodies))
	out.achieved = res.Throughput // completions per second until the last one finished
	out.errs = res.Errors
	// Wait for the capture queue to drain so every record is counted.
	for i := 0; i < 100 && e.ctx.Err() == nil; i++ {
		if q := scrapeMetric(e.ctx, hc, g.admin, "cairn_capture_queue_depth"); q == 0 {
			break
		}
		sleepCtx(e.ctx, 100*time.Millisecond)
	}
	out.recorded = scrapeMetric(e.ctx, hc, g.admin, "cairn_capture_admitted_total") - admitted0
	out.lost = scrapeMetric(e.ctx, hc, g.admin, dropped) - lost0
	e.progress("%s at %.0f RPS: sent %.0f/s, %.0f records, %.0f lost their bodies, %d errors", t.name, rate, out.achieved, out.recorded, out.lost, res.Errors)
	return out, e.ctx.Err()
}
