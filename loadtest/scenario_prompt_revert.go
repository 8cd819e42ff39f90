package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// Drill scenarios (Options.Drill).
const (
	DrillCanary       = "canary"
	DrillPromptRevert = "prompt-revert"
)

// DrillScenarios lists the drills `cairn loadtest drill --scenario` runs.
func DrillScenarios() []string { return []string{DrillCanary, DrillPromptRevert} }

// runDrills dispatches the drill named by Options.Drill.
func runDrills(e *runEnv) error {
	switch e.o.Drill {
	case "", DrillCanary:
		if e.o.Replicas > 1 {
			return fmt.Errorf("drill %s runs one gateway; --replicas is for %s", DrillCanary, DrillPromptRevert)
		}
		return runDrill(e)
	case DrillPromptRevert:
		return runPromptRevertDrill(e)
	}
	return fmt.Errorf("unknown drill scenario %q (want one of %s)", e.o.Drill, strings.Join(DrillScenarios(), ", "))
}

// The playbook's worked example (issue 17): a route at 100% on prompt v17
// (no canary); a reload ships v18, whose system text makes the model
// answer badly (the mock breaks the JSON of every request whose system
// prompt says v18); Cairn detects the contract failures, reverts the
// prompt to v17 (auto_revert_prompt) and the route recovers. With
// Replicas > 1, that many `cairn serve` processes share one Redis and the
// load; the report also gives first failure → the last replica applying
// the revert.
const (
	promptV17 = "Answer in JSON with the fields answer and confidence. Prompt v17."
	promptV18 = "Answer in a friendly paragraph of prose. Prompt v18."
)

func runPromptRevertDrill(e *runEnv) error {
	replicas := max(e.o.Replicas, 1)
	rate := e.rate(200, 100)
	pre := e.phase(5*time.Second, 2*time.Second)
	post := pick(e, 5*time.Second, 2*time.Second)
	maxWait := pick(e, 30*time.Second, 15*time.Second)
	window := 5 * time.Second
	r := e.rep
	r.Params["rate_rps"] = rate
	r.Params["replicas"] = float64(replicas)
	r.Params["before_change_s"] = pre.Seconds()
	r.Params["after_revert_s"] = post.Seconds()
	r.Params["detection_window_s"] = window.Seconds()
	r.Params["detection_min_requests"] = 10
	r.Params["mock_latency_ms"] = ms(drillLatency)

	e.progress("starting the mock, %s and %d cairn replica(s)", map[bool]string{true: "redis", false: "no redis"}[replicas > 1], replicas)
	mockAddr, err := e.startMock(mockSpec{name: "mock", latency: drillLatency, prefix: "mk"})
	if err != nil {
		return err
	}
	// v18's text makes the model answer badly.
	if err := (MockControl{BaseURL: "http://" + mockAddr}).SetFault(e.ctx, SystemFaultPrefix+"v18", Fault{BrokenJSON: true}); err != nil {
		return fmt.Errorf("set the v18 fault: %w", err)
	}
	redisURL := ""
	if replicas > 1 {
		addr, _, err := e.startRedis()
		if err != nil {
			return err
		}
		redisURL = "redis://" + addr
	}
	schema, err := e.writeSchema()
	if err != nil {
		return err
	}
	key, secret := benchKey("drill", 0)
	gws := make([]*gateway, replicas)
	for i := range gws {
		gws[i], err = e.startGateway(fmt.Sprintf("cairn-%d", i+1), configs.Config{
			Release:   "loadtest-prompt-revert",
			RedisURL:  redisURL,
			Providers: []configs.Provider{{Name: "mock", BaseURL: "http://" + mockAddr + "/v1", Timeout: configs.Duration(10 * time.Second)}},
			Keys:      []configs.Key{key},
			Routes: []configs.Route{{
				Name:             drillRoute,
				Prompt:           configs.Prompt{Version: "v17", System: promptV17},
				Sticky:           "user",
				Targets:          []configs.Target{{Provider: "mock", Model: "gpt-4o-mini", Weight: intp(100)}},
				Contract:         configs.Contract{Mode: configs.ModeObserve, SchemaFile: schema},
				AutoRollback:     true,
				AutoRevertPrompt: true,
			}},
			Detection: configs.Detection{Window: configs.Duration(window), MinRequests: 10},
		})
		if err != nil {
			return err
		}
	}
	clients := make([]*chatClient, replicas)
	for i, g := range gws {
		clients[i] = newChatClient(g.api, secret, 1024)
	}
	bodies := drillBodies()

	loadCtx, stopLoad := context.WithCancel(e.ctx)
	defer stopLoad()
	dl := &drillLoad{rate: rate, total: pre + maxWait + post, dropStopped: true, post: func(ctx context.Context, seq int) (chatOutcome, error) {
		return clients[seq%replicas].post(ctx, bodies[seq%len(bodies)])
	}}
	loadStart := time.Now()
	loadDone := dl.start(loadCtx)

	e.progress("steady traffic at %g RPS on prompt v17 for %s", rate, pre)
	if !sleepCtx(e.ctx, pre) {
		return e.ctx.Err()
	}
	// Ship v18: every replica's file changes and is reloaded.
	changeAt := time.Now()
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	for _, g := range gws {
		b, err := os.ReadFile(g.config)
		if err != nil {
			return err
		}
		b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte(promptV17), []byte(promptV18)), []byte("version: v17"), []byte("version: v18"))
		if err := os.WriteFile(g.config, b, 0o600); err != nil {
			return err
		}
		if err := adminPost(e.ctx, hc, "http://"+g.admin+"/admin/reload"); err != nil {
			return fmt.Errorf("reload %s: %w", g.admin, err)
		}
	}
	e.progress("shipped prompt v18 to %d replica(s); waiting for the revert (at most %s)", replicas, maxWait)
	revertSeen := make([]time.Time, replicas)
	var wg sync.WaitGroup
	waitCtx, stopWait := context.WithTimeout(e.ctx, maxWait)
	defer stopWait()
	for i, g := range gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				var st configs.State
				if err := getJSON(waitCtx, hc, "http://"+g.admin+"/admin/state", &st); err == nil {
					if rs := st.Route(drillRoute); rs != nil && rs.Prompt.Version == "v17" && rs.ConfiguredPrompt != nil {
						revertSeen[i] = time.Now()
						return
					}
				}
				select {
				case <-waitCtx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
	var lastRevert time.Time
	reverted := true
	for _, t := range revertSeen {
		if t.IsZero() {
			reverted = false
		}
		if t.After(lastRevert) {
			lastRevert = t
		}
	}
	if reverted {
		e.progress("every replica serves v17 again %s after the change; %s more traffic", time.Since(changeAt).Round(time.Millisecond), post)
		sleepCtx(e.ctx, post)
	} else {
		e.progress("not every replica reverted within %s", maxWait)
	}
	stopLoad()
	load := <-loadDone
	for _, g := range gws {
		if err := alive(g.child); err != nil {
			return err
		}
	}

	// The incident, from the first replica (with Redis every replica
	// lists the fleet's).
	var list []drillIncident
	if err := getJSON(e.ctx, hc, "http://"+gws[0].admin+"/admin/incidents", &list); err != nil {
		r.note("could not list incidents: %v", err)
	}
	var inc drillIncident
	incidents := 0
	for _, x := range list {
		if firstNonEmpty(x.Route, x.Trigger.Route) != drillRoute {
			continue
		}
		incidents++
		if inc.ID == "" {
			if full, err := fetchIncident(e.ctx, gws[0].admin, x.ID); err == nil {
				inc = full
			} else {
				inc = x
			}
		}
	}
	var revertAt time.Time
	for _, a := range inc.Actions {
		if a.Kind == "prompt_revert" && a.OK {
			revertAt = a.At
			break
		}
	}

	reqs := dl.recorded()
	var firstBad, lastBad time.Time
	var badBefore, badBetween, badAfter, errorsTotal int
	for _, q := range reqs {
		if q.sent.IsZero() {
			continue
		}
		if q.err || q.status != 200 {
			errorsTotal++
		}
		if !q.bad() {
			continue
		}
		switch {
		case q.done.Before(changeAt):
			badBefore++
			continue
		case !lastRevert.IsZero() && q.sent.After(lastRevert):
			badAfter++
		default:
			badBetween++
		}
		if firstBad.IsZero() || q.done.Before(firstBad) {
			firstBad = q.done
		}
		if q.done.After(lastBad) {
			lastBad = q.done
		}
	}
	detected := inc.DetectedAt
	if detected.IsZero() {
		detected = inc.OpenedAt
	}
	timing := Table{
		Title:   fmt.Sprintf("prompt-revert drill: %g RPS over %d replica(s); v18 ships at t=%.1fs", rate, replicas, changeAt.Sub(loadStart).Seconds()),
		Columns: []Column{{Key: "v", Title: "time", Unit: "s"}},
	}
	timing.add("change (reload to v18) → first bad response", map[string]float64{"v": secBetween(changeAt, firstBad)})
	timing.add("first bad response → incident detected (gateway clock)", map[string]float64{"v": secBetween(firstBad, detected)})
	timing.add("first bad response → prompt reverted (gateway clock)", map[string]float64{"v": secBetween(firstBad, revertAt)})
	timing.add("first bad response → last replica serving v17 (seen on /admin/state)", map[string]float64{"v": secBetween(firstBad, lastRevert)})
	timing.add("change → revert on every replica", map[string]float64{"v": secBetween(changeAt, lastRevert)})
	timing.add("first bad response → last bad response (recovery)", map[string]float64{"v": secBetween(firstBad, lastBad)})
	reqTab := Table{Title: "requests", Columns: []Column{{Key: "v", Title: "count", Unit: "count"}}}
	reqTab.add("sent", map[string]float64{"v": float64(load.Sent)})
	reqTab.add("failed before the change", map[string]float64{"v": float64(badBefore)})
	reqTab.add("failed between the change and the last replica's revert", map[string]float64{"v": float64(badBetween)})
	reqTab.add("failed after every replica reverted", map[string]float64{"v": float64(badAfter)})
	reqTab.add("answered non-200 or not at all", map[string]float64{"v": float64(errorsTotal)})
	r.Tables = append(r.Tables, timing, reqTab)
	if inc.ID != "" {
		r.note("incident %s: signal %s, status %s", inc.ID, inc.signal(), inc.Status)
	}
	if len(load.ErrorSamples) > 0 {
		r.note("request errors: %s", joinSamples(load.ErrorSamples))
	}
	toRevert := secBetween(firstBad, lastRevert)
	r.invariant("prompt reverted to v17 on every replica", "= 1", b2f(reverted), "bool", reverted)
	r.invariant("automatic prompt revert recorded on the incident", "= 1", b2f(!revertAt.IsZero()), "bool", !revertAt.IsZero())
	r.target("first bad response → last replica reverted", "<= 2 s", toRevert, "s", toRevert <= 2)
	r.invariant("failed requests sent after every replica reverted", "= 0", float64(badAfter), "count", badAfter == 0)
	r.invariant("incidents on the route", "= 1", float64(incidents), "count", incidents == 1)
	r.invariant("requests answered non-200 or not at all", "= 0", float64(errorsTotal), "count", errorsTotal == 0)
	r.Charts = append(r.Charts, promptRevertChart(reqs, loadStart, changeAt, firstBad, revertAt, lastRevert))
	return nil
}

// promptRevertChart plots the failed requests per 250 ms by send time,
// with the change, first failure and revert marked.
func promptRevertChart(reqs []drillReq, loadStart, changeAt, firstBad, revertAt, lastRevert time.Time) Chart {
	buckets := newBucketCounter(loadStart, 250*time.Millisecond, 1)
	for _, q := range reqs {
		if !q.sent.IsZero() {
			buckets.add(q.sent, q.bad())
		}
	}
	chart := Chart{
		Title:  "prompt-revert drill: failed requests per 250 ms (by send time)",
		YLabel: "% of requests", XLabel: "seconds since the load started",
		Series: buckets.series("failed requests %"),
		Markers: markers(loadStart,
			timeMark{changeAt, "v18 ships"}, timeMark{firstBad, "first bad response"},
			timeMark{revertAt, "revert to v17"}, timeMark{lastRevert, "last replica reverted"}),
	}
	return chart
}

// adminPost POSTs to an admin URL and wants a 200.
func adminPost(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(b.String()))
	}
	return nil
}
