package incidents

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// round keeps 4 decimals: enough for rates and milliseconds, and stable
// through a JSON round trip.
func round(x float64) float64 { return math.Round(x*10000) / 10000 }

// pct formats a fraction as a percentage with at most one decimal.
func pct(x float64) string {
	return strconv.FormatFloat(math.Round(x*1000)/10, 'f', -1, 64) + "%"
}

// fmtDur formats a duration the way a config writes it: 30s, 2m, 1.5s.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

func fmtObserved(sig int, obs, thr float64) string {
	switch sig {
	case sigLatency:
		return fmt.Sprintf("p99 %.0f ms < %.0f ms", obs, thr)
	case sigTokens:
		return fmt.Sprintf("%.0f tokens per success < %.0f", obs, thr)
	case sigCost:
		return fmt.Sprintf("%s per success < %s", usd(obs), usd(thr))
	case sigEval:
		return fmt.Sprintf("mean score %.4g > %.4g", obs, thr)
	}
	if s, ok := guardObserved(sig, obs, thr); ok {
		return s
	}
	name, _ := rateWords(signalName(sig))
	return name + " " + pct(obs) + " < threshold " + pct(thr)
}

func ratio(obs, base float64) float64 {
	if base <= 0 {
		return 0
	}
	return obs / base
}

// who names what failed: "canary (openai/gpt-4.1-mini)" for a cohort,
// the target for a route as a whole.
func who(cohort, target string) string {
	switch {
	case cohort != "" && target != "":
		return cohort + " (" + target + ")"
	case cohort != "":
		return "cohort " + cohort
	case target != "":
		return target
	}
	return "all targets"
}

// symptom is the incident's one plain sentence. Every percentage names
// the rate it is (issue 14.8).
func symptom(f *fire, tr *Trigger, rs *configs.RouteState) string {
	from := who(tr.Cohort, tr.Target)
	win := fmtDur(f.window)
	rate, _ := rateWords(f.signal)
	switch f.sig {
	case sigContract:
		return fmt.Sprintf("%d of %d responses from %s on route %s broke their contract in the last %s (%s %s, threshold %s)",
			tr.Failed, tr.Requests, from, tr.Route, win, rate, pct(f.o.observed), pct(f.o.threshold))
	case sigError:
		return fmt.Sprintf("%d of %d requests to %s on route %s failed (5xx, timeouts or contract failures) in the last %s (%s %s, threshold %s)",
			tr.Failed, tr.Requests, from, tr.Route, win, rate, pct(f.o.observed), pct(f.o.threshold))
	case sig429:
		return fmt.Sprintf("%d of %d requests to %s on route %s were rate-limited by the provider (429) in the last %s (%s %s, threshold %s)",
			tr.Failed, tr.Requests, from, tr.Route, win, rate, pct(f.o.observed), pct(f.o.threshold))
	case sigLatency:
		return fmt.Sprintf("p99 latency of %s on route %s reached %.0f ms in the last %s, %.1f× the baseline p99 of %.0f ms (threshold %g×)",
			from, tr.Route, f.o.observed, win, ratio(f.o.observed, f.o.baseline), f.o.baseline, tr.Ratio)
	case sigTokens:
		return fmt.Sprintf("successful responses from %s on route %s used %.0f tokens each in the last %s, %.1f× the baseline of %.0f tokens each (threshold %g×)",
			from, tr.Route, f.o.observed, win, ratio(f.o.observed, f.o.baseline), f.o.baseline, tr.Ratio)
	case sigCost:
		return fmt.Sprintf("successful responses from %s on route %s cost %s each in the last %s, %.1f× the baseline of %s each (threshold %g×)",
			from, tr.Route, usd(f.o.observed), win, ratio(f.o.observed, f.o.baseline), usd(f.o.baseline), tr.Ratio)
	case sigEval:
		g := tr.EvalGate
		name := "eval score"
		if g != nil && g.Name != "" {
			name = "eval score " + strconv.Quote(g.Name)
		}
		drop := 0.0
		if g != nil && g.Point > 0 {
			drop = (f.o.baseline - f.o.observed) / g.Point
		}
		return fmt.Sprintf("the mean %s of %s on route %s fell to %.4g over %d scored requests in the last %s, %.1f points below the baseline of %.4g (%s)",
			name, from, tr.Route, f.o.observed, f.o.n, win, drop, f.o.baseline, baselineScope(f.o.baseSource()))
	}
	if s, ok := guardSymptom(f, tr); ok {
		return s
	}
	s := fmt.Sprintf("Incident declared by hand on route %s: %s", tr.Route, f.reason)
	if tr.Requests > 0 {
		s += fmt.Sprintf(" (%d of %d requests failed in the last %s)", tr.Failed, tr.Requests, win)
	}
	return s
}

// rateWords names a signal's value in words and says what its bad
// requests did: ("contract failure rate", "broke their contract").
func rateWords(signal string) (name, bad string) {
	if name, bad, ok := guardWords(signal); ok {
		return name, bad
	}
	switch signal {
	case SignalContractFailureRate:
		return "contract failure rate", "broke their contract"
	case SignalErrorRate:
		return "error rate", "failed (5xx, timeout or contract failure)"
	case SignalUpstream429Rate:
		return "provider 429 rate", "were refused by the provider with 429"
	case SignalLatencyP99:
		return "p99 latency", ""
	case SignalTokensPerSuccess:
		return "tokens per successful response", ""
	case SignalCostPerSuccess:
		return "cost per successful response", ""
	case SignalEvalDrift:
		return "mean eval score", "scored low"
	}
	return signal, "failed"
}

// baselineScope turns a baseline source ("cohort stable, same window",
// "other cohorts, same window", "earlier windows") into the words that
// follow a rate's name: "of cohort stable in the same window".
func baselineScope(src string) string {
	switch {
	case src == "":
		return ""
	case strings.HasSuffix(src, ", same window"):
		who := strings.TrimSuffix(src, ", same window")
		if who == "other cohorts" {
			who = "the other cohorts"
		}
		return "of " + who + " in the same window"
	case src == "earlier windows":
		return "of the same scope in its earlier windows"
	case strings.HasPrefix(src, "the same cohort before"):
		return "of " + src
	}
	return "(" + src + ")"
}

// baselineClause says what the baseline was, naming the figure and where
// it was measured: "the contract failure rate of cohort stable in the same
// window was 100%".
func baselineClause(signal, unit string, baseline float64, src string) string {
	if src == "" {
		return ""
	}
	name, _ := rateWords(signal)
	return fmt.Sprintf("the %s %s was %s", name, baselineScope(src), fmtValue(unit, baseline))
}

// notCohortSpecific reports whether the other cohorts failed as badly in
// the same window: a rate at or above the threshold there too.
func notCohortSpecific(tr Trigger) bool {
	switch tr.Signal {
	case SignalContractFailureRate, SignalErrorRate, SignalUpstream429Rate:
		return tr.Cohort != "" && strings.HasSuffix(tr.BaselineSource, "same window") && tr.Baseline >= tr.Threshold
	}
	return false
}

// describeDetection is the timeline line of a detection or a wave.
func describeDetection(f *fire, tr *Trigger) string {
	scope := "route " + f.route
	if f.cohort != "" {
		scope = "cohort " + f.cohort + " of route " + f.route
	}
	name, bad := rateWords(f.signal)
	var s string
	switch f.sig {
	case sigRefusal, sigPII:
		s = guardDetection(f, scope)
	case sigLatency:
		s = fmt.Sprintf("p99 latency crossed its threshold on %s: %.0f ms ≥ %.0f ms over %d requests in %s",
			scope, f.o.observed, f.o.threshold, f.o.n, fmtDur(f.window))
	case sigTokens:
		s = fmt.Sprintf("tokens per successful response crossed the threshold on %s: %.0f ≥ %.0f over %d successes in %s",
			scope, f.o.observed, f.o.threshold, f.o.n, fmtDur(f.window))
	case sigCost:
		s = fmt.Sprintf("cost per successful response crossed the threshold on %s: %s ≥ %s over %d priced successes in %s",
			scope, usd(f.o.observed), usd(f.o.threshold), f.o.n, fmtDur(f.window))
	case sigEval:
		s = fmt.Sprintf("mean eval score fell below its threshold on %s: %.4g ≤ %.4g over %d scores in %s (%s severity)",
			scope, f.o.observed, f.o.threshold, f.o.n, fmtDur(f.window), fireSeverity(f))
	default:
		s = fmt.Sprintf("%s crossed its threshold of %s on %s: %d of %d requests in %s %s (%s %s)",
			name, pct(f.o.threshold), scope, f.o.bad, f.o.n, fmtDur(f.window), bad, name, pct(f.o.observed))
	}
	if f.o.baseSrc != "" {
		unit := "fraction"
		switch f.sig {
		case sigLatency:
			unit = "ms"
		case sigTokens:
			unit = "tokens"
		case sigCost:
			unit = "usd"
		case sigEval:
			unit = "score"
		}
		s += "; " + baselineClause(f.signal, unit, f.o.baseline, f.o.baseSrc)
		if f.o.baseN > 0 {
			s += fmt.Sprintf(" (n=%d)", f.o.baseN)
		}
	}
	if f.target != "" {
		s += "; worst target " + f.target
	}
	return s
}

// describeRecord is a one-line account of a sample, with both IDs.
func describeRecord(r *capture.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (provider request %s), %s/%s", r.GatewayRequestID, orNone(r.ProviderRequestID), orNone(r.Provider), orNone(r.Model))
	if r.Cohort != "" {
		fmt.Fprintf(&b, " in cohort %s", r.Cohort)
	}
	fmt.Fprintf(&b, ": outcome %s, status %d, %.0f ms", r.Outcome, r.Status, r.LatencyMS)
	if r.Contract.Verdict == capture.VerdictFail && len(r.Contract.Reasons) > 0 {
		fmt.Fprintf(&b, ", contract: %s", clip(strings.Join(r.Contract.Reasons, "; "), 200))
	}
	if r.Error != "" {
		fmt.Fprintf(&b, ", error: %s", clip(r.Error, 200))
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// describeEntry is the timeline line of an audit entry.
func describeEntry(e AuditEntry) string {
	var b strings.Builder
	switch e.Source {
	case SourceStartup:
		fmt.Fprintf(&b, "gateway started with config revision %s", orNone(e.Revision))
		return b.String()
	case SourceRollbackAuto, SourceRollbackManual, SourcePromptRevert, SourceOverrideRestore, SourceOverrideCleared:
		fmt.Fprintf(&b, "%s", e.Source)
	default:
		fmt.Fprintf(&b, "config change by %s", orNone(e.Source))
	}
	if e.Revision != "" {
		fmt.Fprintf(&b, " (revision %s)", e.Revision)
	}
	if e.Actor != "" {
		fmt.Fprintf(&b, " by %s", e.Actor)
	}
	b.WriteString(": ")
	for i, c := range e.Changes {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Changes)-5)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(describeChange(c))
	}
	if len(e.Changes) == 0 {
		b.WriteString("no differences")
	}
	return b.String()
}

func describeChange(c configs.Change) string {
	return c.Path + " " + fmtVal(c.From) + " → " + fmtVal(c.To)
}

func fmtVal(v any) string {
	switch x := v.(type) {
	case nil:
		return "(none)"
	case string:
		return clip(x, 80)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return clip(fmt.Sprint(v), 80)
	}
	return clip(string(b), 80)
}

// cohortWeight sums the live weight of a cohort's targets on a route.
func cohortWeight(st configs.State, route, cohort string) int {
	rs := st.Route(route)
	if rs == nil {
		return 0
	}
	w := 0
	for _, t := range rs.Targets {
		if t.Cohort == cohort {
			w += t.Weight
		}
	}
	return w
}

func rollbackMessage(route, cohort string, before, after configs.State) string {
	return fmt.Sprintf("rolled back cohort %s on route %s (weight %d→%d)", cohort, route,
		cohortWeight(before, route, cohort), cohortWeight(after, route, cohort))
}

// cohortList names the live cohorts of a route with their targets.
func cohortList(rs *configs.RouteState) string {
	if rs == nil {
		return "the remaining cohorts"
	}
	var parts []string
	for _, t := range rs.Targets {
		if t.Weight > 0 {
			parts = append(parts, fmt.Sprintf("%s (%s/%s, weight %d)", t.Cohort, t.Provider, t.Model, t.Weight))
		}
	}
	if len(parts) == 0 {
		return "no live target"
	}
	return strings.Join(parts, ", ")
}

// deriveLayer says where the incident most likely started, and why.
func deriveLayer(sig int, failing []*capture.Record, changes []AuditEntry, route string) (string, string) {
	switch sig {
	case sigContract:
		return LayerContract, "responses arrived but broke the route's contract"
	case sig429:
		return LayerRateLimit, "the provider refused requests with 429 (rate limited)"
	}
	var contract, transport, provider, rateLimited int
	for _, r := range failing {
		switch {
		case r.Outcome == capture.OutcomeContractFail || r.Contract.Verdict == capture.VerdictFail:
			contract++
		case r.Outcome == capture.OutcomeTimeout || transportError(r):
			transport++
		case is429(r):
			rateLimited++
		default:
			provider++
		}
	}
	changed := routeChanged(changes, route)
	if layer, reason, ok := guardLayer(sig, changed); ok {
		return layer, reason
	}
	switch sig {
	case sigEval:
		if changed {
			return LayerRouting, "answers scored worse and the route's prompt, targets or flags changed shortly before"
		}
		return LayerProvider, "answers scored worse with no change to the route: the model answers differently"
	case sigCost:
		if changed {
			return LayerRouting, "cost per success rose and the route's prompt, targets or flags changed shortly before"
		}
		return LayerProvider, "cost per success rose with no change to the route"
	case sigTokens:
		if changed {
			return LayerRouting, "tokens per success rose and the route's prompt, targets or flags changed shortly before"
		}
		return LayerProvider, "tokens per success rose with no change to the route: the model answers at greater length"
	case sigLatency:
		if transport > provider {
			return LayerTransport, fmt.Sprintf("%d of the slow requests timed out or lost their connection", transport)
		}
		return LayerProvider, "responses arrived but slowly: the provider is slower than the baseline"
	}
	total := contract + transport + provider + rateLimited
	if total == 0 {
		if changed {
			return LayerRouting, "no failing request was captured; the route's configuration changed shortly before"
		}
		return LayerProvider, "no failing request was captured"
	}
	best, layer, why := provider, LayerProvider, fmt.Sprintf("%d of %d failing requests got an error status from the provider", provider, total)
	if transport > best {
		best, layer, why = transport, LayerTransport, fmt.Sprintf("%d of %d failing requests timed out or lost their connection", transport, total)
	}
	if contract > best {
		best, layer, why = contract, LayerContract, fmt.Sprintf("%d of %d failing requests broke their contract", contract, total)
	}
	if rateLimited > best {
		layer, why = LayerRateLimit, fmt.Sprintf("%d of %d failing requests were rate-limited upstream", rateLimited, total)
	}
	return layer, why
}

// transportError reports a failure below HTTP: no status from the
// provider, or a connection-level error.
func transportError(r *capture.Record) bool {
	for _, a := range r.Attempts {
		if a.Status == 0 && a.Error != "" {
			return true
		}
	}
	if r.Status == 0 && r.Error != "" {
		return true
	}
	e := strings.ToLower(r.Error)
	for _, s := range []string{"dial", "connection refused", "connection reset", "eof", "tls", "no such host", "broken pipe"} {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

// routeChanged reports whether changes touched the route's prompt,
// targets, fallbacks or flags.
func routeChanged(changes []AuditEntry, route string) bool {
	prefix := "routes[" + route + "]."
	for _, e := range changes {
		for _, c := range e.Changes {
			if strings.HasPrefix(c.Path, prefix) {
				return true
			}
		}
	}
	return false
}
