package incidents

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

func hypotheses(i *Incident, rs *configs.RouteState) []string {
	tr := i.Trigger
	var out []string
	common := notCohortSpecific(tr)
	switch i.Layer {
	case LayerContract:
		if common {
			out = append(out, fmt.Sprintf("Responses on every cohort of route %s break its contract: what the contract demands is not what the requests ask the models for, or the route's prompt does not ask for it.", tr.Route))
		} else {
			out = append(out, fmt.Sprintf("The responses of %s no longer satisfy the route's contract: the model's output format changed or the prompt no longer asks for it clearly enough.", who(tr.Cohort, tr.Target)))
		}
		if h := noFormatHypothesis(i, rs); h != "" {
			out = append(out, h)
		}
	case LayerProvider:
		out = append(out, fmt.Sprintf("The provider behind %s degraded (errors, slowness or longer answers) independently of this gateway.", who(tr.Cohort, tr.Target)))
	case LayerTransport:
		out = append(out, fmt.Sprintf("The network path to the provider behind %s broke (timeouts, refused or reset connections).", who(tr.Cohort, tr.Target)))
	case LayerRateLimit:
		out = append(out, "The provider's rate limit for this account was reached: traffic grew, or the limit was lowered.")
	case LayerRouting:
		out = append(out, "The route's own configuration (prompt, targets or flags) changed the requests in a way the upstream handles badly.")
	}
	for _, e := range i.Changes {
		if len(e.Changes) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("The change at %s UTC (%s, %s before the first failure) caused it: %s. Compare the before and during samples.",
			ts(e.At), e.Source, fmtDur(i.FirstFailureAt.Sub(e.At)), describeChange(e.Changes[0])))
	}
	if tr.Cohort != "" && strings.HasSuffix(tr.BaselineSource, "same window") {
		name, _ := rateWords(tr.Signal)
		if common {
			out = append(out, fmt.Sprintf("The failure is not specific to cohort %s: the %s %s was %s, at or above the threshold of %s too, so the cause is common to the route rather than one cohort's model.",
				tr.Cohort, name, baselineScope(tr.BaselineSource), fmtValue(tr.Unit, tr.Baseline), fmtValue(tr.Unit, tr.Threshold)))
		} else {
			out = append(out, fmt.Sprintf("The failure is specific to cohort %s: the %s %s was %s.",
				tr.Cohort, name, baselineScope(tr.BaselineSource), fmtValue(tr.Unit, tr.Baseline)))
		}
	}
	if len(out) == 0 {
		out = append(out, "No hypothesis could be derived from the recorded facts; start from the during samples.")
	}
	return out
}

// usersPhrase counts the distinct end users of the failed requests:
// "3 users", "at most 40 users".
func usersPhrase(s Scope) string {
	n := fmt.Sprintf("%d users", s.Users)
	if s.Users == 1 {
		n = "1 user"
	}
	if s.UsersAtMost {
		n = "at most " + n
	}
	return n
}

// failedVerb says what the incident's failed requests did, so a count of
// them says what it counts.
func failedVerb(tr Trigger) string {
	switch tr.Signal {
	case SignalLatencyP99:
		return "were slower than the threshold"
	case SignalContractFailureRate, SignalErrorRate, SignalUpstream429Rate, SignalRefusalRate, SignalPIILeakRate:
		_, bad := rateWords(tr.Signal)
		return bad
	}
	return "failed"
}

// noFormatHypothesis notes failing samples that asked for no JSON while
// the route's schema demands it: ordinary chats sent to a JSON route.
func noFormatHypothesis(i *Incident, rs *configs.RouteState) string {
	if rs == nil || rs.Contract.SchemaFile == "" || len(i.Samples.During) == 0 {
		return ""
	}
	n := 0
	for _, r := range i.Samples.During {
		if r.Params.ResponseFormat == "" || r.Params.ResponseFormat == "text" {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d of the %d failing samples asked for no JSON (no response_format) while the route's schema file %s demands a JSON object: the clients may be sending ordinary chats to a route whose contract expects structured answers.",
		n, len(i.Samples.During), code(rs.Contract.SchemaFile))
}

func missedChecks(i *Incident, rs *configs.RouteState) []string {
	var out []string
	tr := i.Trigger
	if rs != nil {
		switch {
		case rs.Contract.SchemaFile == "" && tr.Signal == SignalContractFailureRate:
			out = append(out, "The route has no schema file: only the request's own response_format or tool schemas were checked.")
		case rs.Contract.Mode == configs.ModeObserve:
			out = append(out, "The route's contract runs in observe mode: failing responses were recorded but still reached clients.")
		case rs.Contract.Mode == configs.ModeEnforce && !rs.Contract.BufferStreams && slices.ContainsFunc(i.Samples.During, func(r capture.Record) bool { return r.Params.Stream }):
			out = append(out, "The contract runs in enforce mode, but streams are not buffered: a streamed response is judged only after the client received it.")
		case rs.Contract.Mode == configs.ModeEnforce:
			out = append(out, "The contract runs in enforce mode: failing non-streaming responses were replaced by a fallback or a 502, so clients still saw errors.")
		}
		if tr.Cohort != "" && !notCohortSpecific(tr) {
			w := cohortWeight(i.State, tr.Route, tr.Cohort)
			total := 0
			for _, t := range rs.Targets {
				total += t.Weight
			}
			out = append(out, fmt.Sprintf("Cohort %s took %s of the route's traffic: no test before the rollout exercised its target with production-like requests (unconfirmed).", tr.Cohort, pct(safeDiv(int64(w), int64(total)))))
		}
		if !rs.AutoRollback && tr.Cohort != "" {
			out = append(out, "auto_rollback is off for the route: the failing cohort kept its traffic until a human acted.")
		}
	}
	out = append(out, evalGateLines(i)...)
	out = append(out, fmt.Sprintf("Detection needs a %s window holding enough requests: it came %s after the first failure.", fmtDur(tr.Window.D()), fmtDur(i.DetectedAt.Sub(i.FirstFailureAt))))
	if len(i.Changes) > 0 {
		out = append(out, "The change before the first failure went live without replaying recorded traffic against the route's contract.")
	}
	return out
}

func actionItems(i *Incident, rs *configs.RouteState) [][2]string {
	tr := i.Trigger
	cfg := "CONFIG"
	// The recorded answers failed by definition; the test replays the
	// recorded requests and judges the new answers, so it passes once the
	// target is fixed (issue 14.6).
	replay := fmt.Sprintf("cairn replay fixtures.jsonl --route %s --config %s", tr.Route, cfg)
	items := [][2]string{{
		"Add a replay test from the failing samples",
		fmt.Sprintf("`cairn incidents samples %s > fixtures.jsonl && %s` (through the gateway at the config's listen address) exits 0 in CI", i.ID, replay),
	}}
	switch i.Layer {
	case LayerContract:
		if notCohortSpecific(tr) {
			items = append(items, [2]string{
				fmt.Sprintf("Make route %s's contract, prompt and the requests clients send agree (every cohort broke the contract)", tr.Route),
				"`" + replay + "` exits 0 through the gateway after the change",
			})
			break
		}
		fixed := "`" + replay + " --target PROVIDER/MODEL` exits 0 against the fixed target before the cohort gets weight again"
		if tr.Target != "" {
			fixed = "`" + replay + " --target " + tr.Target + "` exits 0 against the fixed target before the cohort gets weight again"
		}
		items = append(items, [2]string{
			fmt.Sprintf("Fix the prompt or model of %s so that its output satisfies the contract", who(tr.Cohort, tr.Target)),
			fixed,
		})
	case LayerProvider, LayerTransport:
		items = append(items, [2]string{
			fmt.Sprintf("Ask the provider about %s with the provider request IDs in the evidence", orNone(tr.Target)),
			"The provider's answer is linked in this postmortem",
		})
	case LayerRateLimit:
		items = append(items, [2]string{
			"Raise the provider quota or lower the keys' rpm/tpm so the gateway refuses before the provider does",
			"`GET /admin/state` shows the new key limits; no upstream_rate_limited records under the same load",
		})
	case LayerRouting:
		items = append(items, [2]string{
			"Review the route change that preceded the failure and gate such changes on a replay test",
			"The change is reverted or re-applied with the replay test above passing",
		})
	}
	if rs != nil && tr.Cohort != "" && !rs.AutoRollback {
		items = append(items, [2]string{
			fmt.Sprintf("Turn auto_rollback on for route %s", tr.Route),
			fmt.Sprintf("`cairn check --config %s` passes and `GET /admin/state` shows auto_rollback: true for %s", cfg, tr.Route),
		})
	}
	if rs != nil && rs.Contract.Mode == configs.ModeObserve && tr.Signal == SignalContractFailureRate {
		items = append(items, [2]string{
			fmt.Sprintf("Consider contract mode enforce for route %s", tr.Route),
			"A replay of the failing samples returns a fallback's answer or a 502 instead of the broken content",
		})
	}
	return items
}

func lessons(i *Incident) []string {
	var out []string
	if i.Trigger.Signal != SignalDeclared {
		out = append(out, fmt.Sprintf("What went well: the gateway detected the failure %s after the first failing request and froze the state before touching it.", fmtDur(i.DetectedAt.Sub(i.FirstFailureAt))))
	}
	switch {
	case i.Resolution == ResolutionNoTraffic && i.MitigatedAt == nil:
		out = append(out, fmt.Sprintf("The incident was not mitigated: its traffic stopped and nothing shows the cause was fixed; %d requests failed in total.", i.Scope.Failed))
	case i.MitigatedAt != nil:
		out = append(out, fmt.Sprintf("Mitigation came %s after the first failure; %d requests failed in total.", fmtDur(i.MitigatedAt.Sub(i.FirstFailureAt)), i.Scope.Failed))
	default:
		out = append(out, fmt.Sprintf("The incident was not mitigated; %d requests failed so far.", i.Scope.Failed))
	}
	if len(i.Changes) > 0 {
		out = append(out, "A change preceded the failure: changes to this route should be gated on replayed traffic (to be confirmed in review).")
	}
	out = append(out, "To discuss in review: where we got lucky, and what would have caught this before production.")
	return out
}
