package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// drillReq is what the drill keeps of one request.
type drillReq struct {
	sent, done time.Time
	status     int
	contract   string
	cohort     string
	err        bool
	degraded   bool // a refusal or a leak, for those signals' drills
	// stopped: cut off in flight by the drill stopping its own load, not
	// an answer of the gateway's; left out of the analysis.
	stopped bool
}

// stopGrace is how long a request may have been in flight when the drill
// stops its load and still count as cut off by the stop; one running
// longer was already slow, and counts as failed.
const stopGrace = time.Second

// cutOffByStop reports whether a request failed only because the drill
// canceled its load (loadCtx) while it was in flight.
func cutOffByStop(err error, loadCtx context.Context, sent, done time.Time) bool {
	return err != nil && loadCtx.Err() != nil && done.Sub(sent) < stopGrace
}

// bad reports whether the client got a failed answer: an error, a non-200,
// a reply that broke the route's contract, or a degraded one.
func (q drillReq) bad() bool { return q.err || q.status != 200 || q.contract == "fail" || q.degraded }

// drillIncident is the part of an incident the drill reads.
type drillIncident struct {
	ID             string    `json:"id"`
	Status         string    `json:"status"`
	OpenedAt       time.Time `json:"opened_at"`
	FirstFailureAt time.Time `json:"first_failure_at"`
	DetectedAt     time.Time `json:"detected_at"`
	Route          string    `json:"route"`
	Cohort         string    `json:"cohort"`
	Signal         string    `json:"signal"`
	Trigger        struct {
		Route  string `json:"route"`
		Cohort string `json:"cohort"`
		Signal string `json:"signal"`
	} `json:"trigger"`
	Actions []struct {
		At      time.Time `json:"at"`
		Kind    string    `json:"kind"`
		Message string    `json:"message"`
		OK      bool      `json:"ok"`
	} `json:"actions"`
}

// seenIncident is an incident the poller saw on the drill's route.
type seenIncident struct {
	at  time.Time
	inc drillIncident
}

// drillWatch is what the admin poller observed. Safe for concurrent use.
type drillWatch struct {
	mu        sync.Mutex
	incidents []seenIncident // in the order first seen
	// canaryOff and stableOff are when /admin/state first showed the
	// cohort without live weight.
	canaryOff, stableOff time.Time
	polls, pollErrors    int
	lastErr              string
}

// view is a consistent copy of what was observed.
type drillView struct {
	incidents            []seenIncident
	canaryOff, stableOff time.Time
	polls, pollErrors    int
	lastErr              string
}

func (w *drillWatch) view() drillView {
	w.mu.Lock()
	defer w.mu.Unlock()
	return drillView{
		incidents: append([]seenIncident(nil), w.incidents...),
		canaryOff: w.canaryOff, stableOff: w.stableOff,
		polls: w.polls, pollErrors: w.pollErrors, lastErr: w.lastErr,
	}
}

// canary returns the first incident on the canary cohort.
func (v drillView) canary() (seenIncident, bool) {
	for _, si := range v.incidents {
		if si.inc.cohort() == "canary" {
			return si, true
		}
	}
	return seenIncident{}, false
}

func (i drillIncident) cohort() string { return firstNonEmpty(i.Trigger.Cohort, i.Cohort) }
func (i drillIncident) signal() string { return firstNonEmpty(i.Trigger.Signal, i.Signal) }

const drillRoute = "support-bot"

// drillLatency is the mocks' reply latency. A real provider answers in tens
// or hundreds of milliseconds; with a sub-millisecond mock, scheduling noise
// alone can double a cohort's p99 and trip the latency signal.
const drillLatency = 50 * time.Millisecond

// runDrill runs steady traffic on a route with a 20% canary, makes the
// canary return broken JSON at a fixed time, and measures the time from
// the first bad response to the incident and to the automatic rollback,
// the requests that failed in between, and that none failed after.
func runDrill(e *runEnv) error {
	if e.o.Signal == SignalEvalDrift {
		return runEvalDrill(e)
	}
	sig, err := drillSignalFor(e.o.Signal)
	if err != nil {
		return err
	}
	rate := e.rate(200, 100)
	pre := e.phase(10*time.Second, 3*time.Second)
	post := pick(e, 10*time.Second, 2*time.Second)
	maxWait := pick(e, 30*time.Second, 15*time.Second)
	r := e.rep
	r.Params["rate_rps"] = rate
	r.Params["before_fault_s"] = pre.Seconds()
	r.Params["after_rollback_s"] = post.Seconds()
	r.Params["canary_weight_pct"] = 20
	r.Params["detection_window_s"] = 10
	r.Params["detection_min_requests"] = 10
	r.Params["mock_latency_ms"] = ms(drillLatency)
	r.note("signal under drill: %s (the canary %s)", sig.name, sig.what)

	schema, err := e.writeSchema()
	if err != nil {
		return err
	}
	contract := configs.Contract{Mode: configs.ModeObserve, SchemaFile: schema}
	if sig.noContract {
		contract.SchemaFile = ""
	}
	canaryAddr, gw, secret, err := e.startCanaryDrill(canaryDrillRoute{
		release:   "loadtest-drill",
		system:    "Answer in JSON.",
		contract:  contract,
		detection: configs.Detection{Window: configs.Duration(10 * time.Second), MinRequests: 10},
	})
	if err != nil {
		return err
	}
	client := newChatClient(gw.api, secret, 1024)
	client.judge = sig.judge
	bodies := drillBodies()
	// Warm the connections without touching the detector's picture much.
	ClosedLoop{Workers: 4, MaxRequests: 20, Duration: 2 * time.Second}.Run(e.ctx, func(ctx context.Context, seq int) error {
		_, err := client.post(ctx, bodies[seq%len(bodies)])
		return err
	})

	loadCtx, stopLoad := context.WithCancel(e.ctx)
	defer stopLoad()
	watch, stopWatch := e.watchDrill(gw.admin)
	defer stopWatch()
	dl := &drillLoad{rate: rate, total: pre + maxWait + post, post: func(ctx context.Context, seq int) (chatOutcome, error) {
		return client.post(ctx, bodies[seq%len(bodies)])
	}}
	loadStart := time.Now()
	loadDone := dl.start(loadCtx)

	e.progress("steady traffic at %g RPS for %s before the fault", rate, pre)
	if !sleepCtx(e.ctx, pre) {
		return e.ctx.Err()
	}
	before := watch.view()
	ctl := MockControl{BaseURL: "http://" + canaryAddr}
	if err := ctl.SetFault(e.ctx, "*", sig.fault); err != nil {
		return fmt.Errorf("break the canary: %w", err)
	}
	flipAt := time.Now()
	e.progress("canary now %s; waiting for the %s incident and the rollback (at most %s)", sig.what, sig.name, maxWait)
	rolledBack, err := e.waitCanaryOff(watch, gw, maxWait)
	if err != nil {
		return err
	}
	if rolledBack {
		e.progress("rollback seen %s after the fault; %s more traffic", time.Since(flipAt).Round(time.Millisecond), post)
		sleepCtx(e.ctx, post)
	} else {
		e.progress("no rollback within %s of the fault", maxWait)
	}
	stopLoad()
	load := <-loadDone
	// One more look at the incident, for its rollback action.
	sleepCtx(e.ctx, 50*time.Millisecond)
	stopWatch()
	if err := alive(gw.child); err != nil {
		return err
	}
	v := watch.view()
	rbSeen := v.canaryOff
	ci, haveIncident := v.canary()
	inc, incSeen := ci.inc, ci.at
	if haveIncident {
		if full, err := fetchIncident(e.ctx, gw.admin, inc.ID); err == nil {
			inc = full
		} else {
			r.note("could not read incident %s: %v", inc.ID, err)
		}
	}
	var rollbackAt time.Time
	for _, a := range inc.Actions {
		if a.Kind == "rollback" && a.OK && strings.Contains(a.Message, "cohort canary ") {
			rollbackAt = a.At
			break
		}
	}
	if rollbackAt.IsZero() {
		rollbackAt = rbSeen
	}

	// Analyse the requests.
	reqs := dl.recorded()
	var firstBad time.Time
	var badBeforeFault, badBetween, badAfter, canaryAfter, errorsTotal, canaryBefore, sentBefore int
	var lateAfter time.Duration
	var cutOff int
	for _, q := range reqs {
		if q.sent.IsZero() {
			continue
		}
		if q.stopped {
			cutOff++
			continue
		}
		if q.err || q.status != 200 {
			errorsTotal++
		}
		if q.sent.Before(flipAt) {
			sentBefore++
			if q.cohort == "canary" {
				canaryBefore++
			}
		}
		after := !rollbackAt.IsZero() && q.sent.After(rollbackAt)
		if after && q.cohort == "canary" {
			canaryAfter++
		}
		if !q.bad() {
			continue
		}
		switch {
		case q.done.Before(flipAt):
			badBeforeFault++
		case after:
			badAfter++
			lateAfter = max(lateAfter, q.sent.Sub(rollbackAt))
		default:
			badBetween++
		}
		if !q.done.Before(flipAt) && (firstBad.IsZero() || q.done.Before(firstBad)) {
			firstBad = q.done
		}
	}
	detected := inc.DetectedAt
	if detected.IsZero() {
		detected = inc.OpenedAt
	}
	timing := Table{
		Title:   fmt.Sprintf("canary drill (%s): %g RPS, the 20%% canary %s at t=%.1fs", sig.name, rate, sig.what, flipAt.Sub(loadStart).Seconds()),
		Columns: []Column{{Key: "v", Title: "time", Unit: "s"}},
	}
	timing.add("fault injected → first bad response", map[string]float64{"v": secBetween(flipAt, firstBad)})
	timing.add("first bad response → incident detected (gateway clock)", map[string]float64{"v": secBetween(firstBad, detected)})
	timing.add("first bad response → incident seen on /admin/incidents", map[string]float64{"v": secBetween(firstBad, incSeen)})
	timing.add("first bad response → rollback (gateway clock)", map[string]float64{"v": secBetween(firstBad, rollbackAt)})
	timing.add("first bad response → rollback seen on /admin/state", map[string]float64{"v": secBetween(firstBad, rbSeen)})
	reqTab := Table{
		Title:   "requests",
		Columns: []Column{{Key: "v", Title: "count", Unit: "count"}},
	}
	reqTab.add("sent", map[string]float64{"v": float64(load.Sent)})
	reqTab.add("failed before the fault", map[string]float64{"v": float64(badBeforeFault)})
	reqTab.add("failed between the fault and the rollback", map[string]float64{"v": float64(badBetween)})
	reqTab.add("failed after the rollback", map[string]float64{"v": float64(badAfter)})
	reqTab.add("sent after the rollback, served by the canary", map[string]float64{"v": float64(canaryAfter)})
	reqTab.add("answered non-200 or not at all", map[string]float64{"v": float64(errorsTotal)})
	r.Tables = append(r.Tables, timing, reqTab)
	if sentBefore > 0 {
		r.Params["canary_share_before_fault_pct"] = math.Round(1000*float64(canaryBefore)/float64(sentBefore)) / 10
	}
	if haveIncident {
		r.note("incident %s: signal %s on cohort %q, status %s; first failure at %s, detected at %s",
			inc.ID, inc.signal(), inc.cohort(), inc.Status,
			inc.FirstFailureAt.UTC().Format("15:04:05.000"), detected.UTC().Format("15:04:05.000"))
	}
	others := 0
	for _, si := range v.incidents {
		if si.inc.cohort() == "canary" && si.inc.ID == inc.ID {
			continue
		}
		others++
		r.note("other incident %s: signal %s on cohort %q, seen at t=%.3fs (fault at t=%.3fs)",
			si.inc.ID, si.inc.signal(), si.inc.cohort(), si.at.Sub(loadStart).Seconds(), flipAt.Sub(loadStart).Seconds())
	}
	if !v.stableOff.IsZero() {
		r.note("the stable cohort lost its weight at t=%.3fs", v.stableOff.Sub(loadStart).Seconds())
	}
	if badAfter > 0 {
		r.note("the last failure after the rollback was sent %s after it", lateAfter.Round(time.Millisecond))
	}
	if cutOff > 0 {
		r.note("%d requests in flight (under %s) when the drill stopped its load were cut off and left out", cutOff, stopGrace)
	}
	if len(load.ErrorSamples) > 0 {
		r.note("request errors: %s", joinSamples(load.ErrorSamples))
	}
	r.note("the admin API was polled %d times (every 10 ms), %d failed%s", v.polls, v.pollErrors, lastErrSuffix(v.lastErr))

	toRollback := secBetween(firstBad, rollbackAt)
	r.invariant("canary rolled back", "= 1", b2f(!rollbackAt.IsZero()), "bool", !rollbackAt.IsZero())
	sigOK := haveIncident && inc.signal() == sig.name
	r.invariant("the canary's incident is "+sig.name, "= 1", b2f(sigOK), "bool", sigOK)
	r.target("first bad response → rollback", "<= 2 s", toRollback, "s", toRollback <= 2)
	r.invariant("failed requests after the rollback", "= 0", float64(badAfter), "count", badAfter == 0)
	r.invariant("requests answered non-200 or not at all", "= 0", float64(errorsTotal), "count", errorsTotal == 0)
	r.invariant("incidents before the fault", "= 0", float64(len(before.incidents)), "count", len(before.incidents) == 0)
	r.invariant("incidents other than the canary's", "= 0", float64(others), "count", others == 0)
	r.invariant("stable cohort kept its weight", "= 1", b2f(v.stableOff.IsZero()), "bool", v.stableOff.IsZero())

	// Chart: failure rate and canary share per 250 ms bucket, by send time.
	buckets := newBucketCounter(loadStart, 250*time.Millisecond, 2)
	for _, q := range reqs {
		if !q.sent.IsZero() && !q.stopped {
			buckets.add(q.sent, q.bad(), q.cohort == "canary")
		}
	}
	chart := Chart{
		Title:  "canary drill: failed requests per 250 ms (by send time)",
		YLabel: "% of requests", XLabel: "seconds since the load started",
		Series: buckets.series("failed requests %", "served by canary %"),
		Markers: markers(loadStart,
			timeMark{flipAt, "canary breaks"}, timeMark{firstBad, "first bad response"},
			timeMark{detected, "incident"}, timeMark{rollbackAt, "rollback"}),
	}
	r.Charts = append(r.Charts, chart)
	return nil
}

func lastErrSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " (last: " + s + ")"
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// drillPoll polls /admin/incidents and /admin/state every 10 ms until ctx
// ends, noting when each incident on the route and each cohort's loss of
// weight first appear.
func (e *runEnv) drillPoll(ctx context.Context, admin string, w *drillWatch) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer hc.CloseIdleConnections()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	seen := map[string]bool{}
	for {
		var errs []error
		var list []drillIncident
		err := getJSON(ctx, hc, "http://"+admin+"/admin/incidents", &list)
		now := time.Now()
		if err != nil {
			errs = append(errs, err)
		}
		var fresh []seenIncident
		for _, inc := range list {
			if firstNonEmpty(inc.Route, inc.Trigger.Route) == drillRoute && !seen[inc.ID] {
				seen[inc.ID] = true
				fresh = append(fresh, seenIncident{at: now, inc: inc})
			}
		}
		var st configs.State
		err = getJSON(ctx, hc, "http://"+admin+"/admin/state", &st)
		now = time.Now()
		if err != nil {
			errs = append(errs, err)
		}
		rs := st.Route(drillRoute)
		w.mu.Lock()
		w.incidents = append(w.incidents, fresh...)
		if rs != nil && w.canaryOff.IsZero() && cohortOff(rs, "canary") {
			w.canaryOff = now
		}
		if rs != nil && w.stableOff.IsZero() && cohortOff(rs, "stable") {
			w.stableOff = now
		}
		w.polls++
		if len(errs) > 0 && ctx.Err() == nil {
			w.pollErrors++
			w.lastErr = errs[0].Error()
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cohortOff reports whether cohort has no live weight on the route.
func cohortOff(rs *configs.RouteState, cohort string) bool {
	if slices.Contains(rs.RolledBack, cohort) {
		return true
	}
	for _, t := range rs.Targets {
		if t.Cohort == cohort && t.Weight > 0 {
			return false
		}
	}
	return true
}

// fetchIncident reads GET /admin/incidents/{id}.
func fetchIncident(ctx context.Context, admin, id string) (drillIncident, error) {
	var inc drillIncident
	hc := &http.Client{Timeout: 5 * time.Second}
	err := getJSON(ctx, hc, "http://"+admin+"/admin/incidents/"+id, &inc)
	hc.CloseIdleConnections()
	return inc, err
}

// getJSON GETs url and decodes a 200 JSON body into out.
func getJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %d", url, resp.StatusCode)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("get %s: decode: %w", url, err)
	}
	return nil
}
