package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/configs"
)

// SignalEvalDrift is the drill --signal that runs the eval drift drill.
const SignalEvalDrift = "eval_drift"

// scored is one answer the drill's judge read.
type scored struct {
	id       string
	degraded bool
	done     time.Time
	cohort   string
}

// evalScorer is the drill's judge: it reads answers, scores them with
// DefaultJudge and posts the scores to /admin/scores in batches (every
// 100 ms or 200 scores), like an online eval pipeline beside an app.
type evalScorer struct {
	admin    string
	hc       *http.Client
	judge    Judge
	in       chan scored
	posted   atomic.Int64
	accepted atomic.Int64
	rejected atomic.Int64
	failed   atomic.Int64
	dropped  atomic.Int64
}

func (s *evalScorer) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var batch []map[string]any
	flush := func() {
		if len(batch) == 0 {
			return
		}
		s.post(ctx, batch)
		batch = batch[:0]
	}
	for {
		select {
		case a, ok := <-s.in:
			if !ok {
				flush()
				return
			}
			content := "a helpful answer"
			if a.degraded {
				content = DegradedContent
			}
			batch = append(batch, map[string]any{"request_id": a.id, "name": "helpfulness", "value": s.judge.Score(content), "source": "drill-judge"})
			if len(batch) >= 200 {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}

func (s *evalScorer) post(ctx context.Context, batch []map[string]any) {
	b, _ := json.Marshal(batch)
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, "http://"+s.admin+"/admin/scores", bytes.NewReader(b))
	if err != nil {
		s.failed.Add(int64(len(batch)))
		return
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.failed.Add(int64(len(batch)))
		return
	}
	defer resp.Body.Close()
	var res struct {
		Accepted int               `json:"accepted"`
		Rejected []json.RawMessage `json:"rejected"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&res) != nil {
		s.failed.Add(int64(len(batch)))
		return
	}
	s.posted.Add(int64(len(batch)))
	s.accepted.Add(int64(res.Accepted))
	s.rejected.Add(int64(len(res.Rejected)))
}

// postRead sends body and returns the outcome, the gateway request ID and
// the answer's content.
func (c *chatClient) postRead(ctx context.Context, body []byte) (chatOutcome, string, string, error) {
	var out chatOutcome
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := c.do(ctx, body, resp); err != nil {
		return out, "", "", err
	}
	out.status = resp.StatusCode()
	out.cohort = string(resp.Header.Peek("x-cairn-cohort"))
	id := string(resp.Header.Peek("x-request-id"))
	content := gjson.GetBytes(resp.Body(), "choices.0.message.content").Str
	return out, id, content, nil
}

// runEvalDrill is `drill --signal eval_drift`: steady traffic on a route
// with a 20% canary and a judge scoring every answer beside the load; at a
// known time the canary starts answering worse (the mock's Degrade fault:
// valid, unhelpful answers the judge scores 15 points lower). It measures
// first degraded response → detection (investigate) → page → rollback.
func runEvalDrill(e *runEnv) error {
	rate := e.rate(100, 60)
	pre := e.phase(15*time.Second, 5*time.Second)
	post := pick(e, 5*time.Second, 2*time.Second)
	maxWait := pick(e, 60*time.Second, 30*time.Second)
	evalWindow := pick(e, 30*time.Second, 15*time.Second)
	const minScores = 30
	r := e.rep
	r.Params["signal_eval_drift"] = 1
	r.Params["rate_rps"] = rate
	r.Params["before_fault_s"] = pre.Seconds()
	r.Params["canary_weight_pct"] = 20
	r.Params["eval_window_s"] = evalWindow.Seconds()
	r.Params["eval_min_scores"] = minScores
	r.Params["drop_points_investigate"] = 2
	r.Params["drop_points_page"] = 5
	r.Params["judge_helpful"], r.Params["judge_degraded"], r.Params["judge_noise_points"] = 0.85, 0.70, 3

	canaryAddr, gw, secret, err := e.startCanaryDrill(canaryDrillRoute{
		release: "loadtest-drill-eval",
		system:  "Answer helpfully.",
		detection: configs.Detection{
			Window: configs.Duration(10 * time.Second), MinRequests: 10,
			Eval: configs.Eval{Window: configs.Duration(evalWindow), MinScores: minScores,
				DropPoints: configs.Threshold{Investigate: 2, Page: 5}},
		},
	})
	if err != nil {
		return err
	}
	client := newChatClient(gw.api, secret, 1024)
	bodies := make([][]byte, 4096)
	for i := range bodies {
		// Plain text answers: the judge reads their content.
		bodies[i] = fmt.Appendf(nil, `{"model":%q,"user":"user-%08x","messages":[{"role":"user","content":"Where is my refund for order %d?"}]}`, drillRoute, rand.Uint32(), i)
	}
	sc := &evalScorer{admin: gw.admin, hc: &http.Client{Timeout: 30 * time.Second}, judge: DefaultJudge(), in: make(chan scored, 1<<16)}
	var scWG sync.WaitGroup
	scWG.Add(1)
	go sc.run(e.ctx, &scWG)

	total := pre + maxWait + post
	var mu sync.Mutex
	var answers []scored
	var errorsTotal atomic.Int64
	loadCtx, stopLoad := context.WithCancel(e.ctx)
	defer stopLoad()
	watch, stopWatch := e.watchDrill(gw.admin)
	defer stopWatch()
	loadStart := time.Now()
	loadDone := make(chan Result, 1)
	go func() {
		loadDone <- OpenLoop{Rate: rate, Duration: total, MaxInFlight: openMaxInFlight, Drain: 10 * time.Second}.Run(loadCtx, func(ctx context.Context, seq int) error {
			sent := time.Now()
			o, id, content, err := client.postRead(ctx, bodies[seq%len(bodies)])
			if cutOffByStop(err, loadCtx, sent, time.Now()) {
				return err // the drill stopped its load: not the gateway's answer
			}
			if err != nil || o.status != 200 {
				errorsTotal.Add(1)
				if err != nil {
					return err
				}
				return statusError(o)
			}
			a := scored{id: id, degraded: content == DegradedContent, done: time.Now(), cohort: o.cohort}
			mu.Lock()
			answers = append(answers, a)
			mu.Unlock()
			select {
			case sc.in <- a:
			default:
				sc.dropped.Add(1)
			}
			return nil
		})
	}()

	e.progress("steady traffic at %g RPS with a judge scoring every answer for %s before the fault", rate, pre)
	if !sleepCtx(e.ctx, pre) {
		return e.ctx.Err()
	}
	before := watch.view()
	ctl := MockControl{BaseURL: "http://" + canaryAddr}
	if err := ctl.SetFault(e.ctx, "*", Fault{Degrade: true}); err != nil {
		return fmt.Errorf("degrade the canary: %w", err)
	}
	flipAt := time.Now()
	e.progress("canary now answers worse; waiting for the incident and the rollback (at most %s)", maxWait)
	rolledBack, err := e.waitCanaryOff(watch, gw, maxWait)
	if err != nil {
		return err
	}
	if rolledBack {
		e.progress("rollback seen %s after the fault; %s more traffic", time.Since(flipAt).Round(time.Millisecond), post)
		sleepCtx(e.ctx, post)
	}
	stopLoad()
	load := <-loadDone
	close(sc.in)
	scWG.Wait()
	sleepCtx(e.ctx, 100*time.Millisecond)
	stopWatch()
	if err := alive(gw.child); err != nil {
		return err
	}

	v := watch.view()
	ci, haveIncident := v.canary()
	var inc struct {
		ID         string    `json:"id"`
		Severity   string    `json:"severity"`
		DetectedAt time.Time `json:"detected_at"`
		Trigger    struct {
			Signal    string  `json:"signal"`
			Severity  string  `json:"severity"`
			Observed  float64 `json:"observed"`
			Baseline  float64 `json:"baseline"`
			Requests  int64   `json:"requests"`
			BaselineN int64   `json:"baseline_n"`
		} `json:"trigger"`
		Timeline []struct {
			At   time.Time `json:"at"`
			Kind string    `json:"kind"`
		} `json:"timeline"`
		Actions []struct {
			At   time.Time `json:"at"`
			Kind string    `json:"kind"`
			OK   bool      `json:"ok"`
		} `json:"actions"`
	}
	if haveIncident {
		hc := &http.Client{Timeout: 5 * time.Second}
		if err := getJSON(e.ctx, hc, "http://"+gw.admin+"/admin/incidents/"+ci.inc.ID, &inc); err != nil {
			r.note("could not read incident %s: %v", ci.inc.ID, err)
		}
		hc.CloseIdleConnections()
	}
	var pageAt, rollbackAt time.Time
	if inc.Trigger.Severity == string(configs.SeverityPage) {
		pageAt = inc.DetectedAt
	}
	for _, ev := range inc.Timeline {
		if ev.Kind == "severity_raised" && pageAt.IsZero() {
			pageAt = ev.At
		}
	}
	for _, a := range inc.Actions {
		if a.Kind == "rollback" && a.OK && rollbackAt.IsZero() {
			rollbackAt = a.At
		}
	}
	if rollbackAt.IsZero() {
		rollbackAt = v.canaryOff
	}
	var firstDegraded time.Time
	var degradedBetween, degradedAfter, canaryAfter int
	mu.Lock()
	for _, a := range answers {
		after := !rollbackAt.IsZero() && a.done.After(rollbackAt.Add(time.Second))
		if a.degraded {
			if firstDegraded.IsZero() || a.done.Before(firstDegraded) {
				firstDegraded = a.done
			}
			if after {
				degradedAfter++
			} else {
				degradedBetween++
			}
		}
		if after && a.cohort == "canary" {
			canaryAfter++
		}
	}
	mu.Unlock()
	timing := Table{
		Title:   fmt.Sprintf("eval drift drill: %g RPS, the 20%% canary answers worse from t=%.1fs, a judge scores every answer", rate, flipAt.Sub(loadStart).Seconds()),
		Columns: []Column{{Key: "v", Title: "time", Unit: "s"}},
	}
	timing.add("fault injected → first degraded response", map[string]float64{"v": secBetween(flipAt, firstDegraded)})
	timing.add("first degraded response → incident detected (gateway clock)", map[string]float64{"v": secBetween(firstDegraded, inc.DetectedAt)})
	timing.add("first degraded response → severity page (gateway clock)", map[string]float64{"v": secBetween(firstDegraded, pageAt)})
	timing.add("first degraded response → rollback (gateway clock)", map[string]float64{"v": secBetween(firstDegraded, rollbackAt)})
	timing.add("first degraded response → rollback seen on /admin/state", map[string]float64{"v": secBetween(firstDegraded, v.canaryOff)})
	counts := Table{Title: "requests and scores", Columns: []Column{{Key: "v", Title: "count", Unit: "count"}}}
	counts.add("requests sent", map[string]float64{"v": float64(load.Sent)})
	counts.add("degraded answers before the rollback", map[string]float64{"v": float64(degradedBetween)})
	counts.add("degraded answers over 1 s after the rollback", map[string]float64{"v": float64(degradedAfter)})
	counts.add("scores posted", map[string]float64{"v": float64(sc.posted.Load())})
	counts.add("scores accepted", map[string]float64{"v": float64(sc.accepted.Load())})
	counts.add("scores rejected", map[string]float64{"v": float64(sc.rejected.Load())})
	counts.add("scores not posted (queue full or post failed)", map[string]float64{"v": float64(sc.dropped.Load() + sc.failed.Load())})
	r.Tables = append(r.Tables, timing, counts)
	if haveIncident {
		r.note("incident %s: %s on cohort canary, detected at %s severity, now %s; mean score %.4g against %.4g (n %d / %d)",
			inc.ID, inc.Trigger.Signal, inc.Trigger.Severity, inc.Severity, inc.Trigger.Observed, inc.Trigger.Baseline, inc.Trigger.Requests, inc.Trigger.BaselineN)
	}
	others := 0
	for _, si := range v.incidents {
		if si.inc.ID != ci.inc.ID {
			others++
			r.note("other incident %s: signal %s on cohort %q", si.inc.ID, si.inc.signal(), si.inc.cohort())
		}
	}
	toRollback := secBetween(firstDegraded, rollbackAt)
	r.invariant("eval_drift incident on the canary", "= 1", b2f(haveIncident && ci.inc.signal() == SignalEvalDrift), "bool", haveIncident && ci.inc.signal() == SignalEvalDrift)
	r.invariant("canary rolled back", "= 1", b2f(!rollbackAt.IsZero()), "bool", !rollbackAt.IsZero())
	r.target("first degraded response → rollback", "<= 10 s", toRollback, "s", toRollback <= 10)
	r.invariant("scores rejected", "= 0", float64(sc.rejected.Load()), "count", sc.rejected.Load() == 0)
	r.invariant("requests answered non-200 or not at all", "= 0", float64(errorsTotal.Load()), "count", errorsTotal.Load() == 0)
	r.invariant("incidents before the fault", "= 0", float64(len(before.incidents)), "count", len(before.incidents) == 0)
	r.invariant("incidents other than the canary's", "= 0", float64(others), "count", others == 0)
	r.invariant("degraded answers over 1 s after the rollback", "= 0", float64(degradedAfter), "count", degradedAfter == 0)
	r.invariant("canary answers over 1 s after the rollback", "= 0", float64(canaryAfter), "count", canaryAfter == 0)

	// Chart: degraded answers and the canary's share per 500 ms (by the
	// time the answer arrived).
	buckets := newBucketCounter(loadStart, 500*time.Millisecond, 2)
	mu.Lock()
	for _, a := range answers {
		buckets.add(a.done, a.degraded, a.cohort == "canary")
	}
	mu.Unlock()
	chart := Chart{
		Title:  "eval drift drill: degraded answers per 500 ms",
		YLabel: "% of answers", XLabel: "seconds since the load started",
		Series: buckets.series("degraded answers %", "served by canary %"),
		Markers: markers(loadStart,
			timeMark{flipAt, "canary degrades"}, timeMark{inc.DetectedAt, "incident"},
			timeMark{pageAt, "page"}, timeMark{rollbackAt, "rollback"}),
	}
	r.Charts = append(r.Charts, chart)
	return nil
}
