package incidents

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

const pmTime = "2006-01-02 15:04:05.000"

func ts(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(pmTime)
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", " ")
}

// code wraps s in backticks that its own backticks cannot close.
func code(s string) string {
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

// RenderPostmortem drafts the incident's postmortem in Markdown: Summary,
// Timeline (UTC), Impact and scope, Root cause (confirmed facts apart from
// hypotheses), Why the checks missed it, Action items, Lessons and
// Evidence. Facts come from the incident; hypotheses are labelled as such.
func RenderPostmortem(i *Incident) string { return RenderPostmortemWith(i, PostmortemOptions{}) }

// pmSampleRows is how many samples of each phase the draft lists.
const pmSampleRows = 20

// PostmortemOptions shape a postmortem written beside other files.
type PostmortemOptions struct {
	// ChartFile is the incident chart's SVG beside the Markdown (a
	// relative path), embedded as an image; empty says how to get it.
	ChartFile string
}

// RenderPostmortemWith is RenderPostmortem with the chart embedded as
// opts say (issue 18: `cairn incidents postmortem ID --out DIR`).
func RenderPostmortemWith(i *Incident, opts PostmortemOptions) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	tr := i.Trigger
	rs := i.State.Route(tr.Route)
	verr := i.Verify()

	w("# Postmortem draft: %s\n\n", oneLine(i.Symptom))
	w("_Drafted by Cairn from incident %s (status **%s**). Confirmed facts come from the incident's frozen snapshot", code(i.ID), i.Status)
	if verr == nil {
		w(" (hash verified)")
	} else {
		w(" (**hash verification FAILED**: the snapshot was altered after the incident opened)")
	}
	w("; everything under hypotheses needs a human to confirm or reject it._\n\n")

	// Summary.
	w("## Summary\n\n")
	w("%s.\n\n", strings.TrimSuffix(oneLine(i.Symptom), "."))
	w("- **Where**: route %s", code(tr.Route))
	if tr.Cohort != "" {
		w(", cohort %s", code(tr.Cohort))
	}
	if tr.Target != "" {
		w(", target %s", code(tr.Target))
	}
	w(".\n")
	if i.Class == ClassSecurity {
		w("- **Class**: security: responses exposed personal data or secrets. The capture records name the detectors that found them (%s), never the values; treat the samples' masked answers as the evidence and the affected users as notifiable.\n", code("pii_leak"))
	}
	if tr.Signal != SignalDeclared {
		w("- **Signal**: %s.\n", signalSentence(tr))
	} else if i.Reason != "" {
		w("- **Declared by hand**: %s.\n", oneLine(i.Reason))
	}
	w("- **Severity**: %s.\n", severityLine(i))
	w("- **Likely layer**: %s", i.Layer)
	if i.LayerReason != "" {
		w(" (%s)", i.LayerReason)
	}
	w(".\n")
	w("- **First failure** %s UTC; **detected** %s UTC (%s later)", ts(i.FirstFailureAt), ts(i.DetectedAt), fmtDur(i.DetectedAt.Sub(i.FirstFailureAt)))
	if i.MitigatedAt != nil {
		w("; **mitigated** %s UTC (%s after the first failure)", ts(*i.MitigatedAt), fmtDur(i.MitigatedAt.Sub(i.FirstFailureAt)))
	}
	if i.ResolvedAt != nil {
		w("; **resolved** %s UTC", ts(*i.ResolvedAt))
		if i.Resolution == ResolutionNoTraffic {
			w(" (no traffic; not mitigated)")
		}
	}
	w(".\n")
	if acts := actionsOf(i, "rollback"); len(acts) > 0 {
		w("- **Mitigation**: %s.\n", strings.Join(acts, "; "))
	} else {
		w("- **Mitigation**: no rollback was made.\n")
	}
	if i.Resolution == ResolutionNoTraffic {
		w("- **Resolution**: none by Cairn or anyone: %s stopped receiving requests, so nothing could fail. Nothing shows the cause was fixed; expect the failure when traffic returns.\n", quietScope(tr))
	}
	w("- **Impact**: %d of %d requests on the route %s during the incident, from %s; %d tokens were spent on them.\n",
		i.Scope.Failed, i.Scope.Requests, failedVerb(tr), usersPhrase(i.Scope), i.Cost.FailedTokens)
	if c := costLine(i.Cost); c != "" {
		w("- **Cost**: %s.\n", c)
	}
	if len(i.Waves) > 1 {
		w("- **Waves**: the signal fired %d times while the incident was open or mitigated.\n", len(i.Waves))
	}
	w("\n")

	// The chart (issue 18): the same picture as the console's.
	w("## Timeline chart\n\n")
	if opts.ChartFile != "" {
		w("![%s per cohort of route %s, with the changes, first failure, detection, rollbacks and resolution marked](%s)\n\n", tr.Signal, cell(tr.Route), opts.ChartFile)
	} else {
		w("The signal per cohort with every change, the first failure, the detection, each rollback and the resolution marked: %s writes it beside this draft as SVG; the console shows it (%s on the admin listener).\n\n",
			code("cairn incidents postmortem "+i.ID+" --out DIR"), code("/ui/#/incidents/"+i.ID))
	}

	// Timeline.
	w("## Timeline (UTC)\n\n")
	w("| Time (UTC) | Event | Details |\n|---|---|---|\n")
	for _, e := range i.Timeline {
		details := e.Message
		if e.Replica != "" {
			details += " [" + e.Replica + "]"
		}
		w("| %s | %s | %s |\n", ts(e.At), cell(e.Kind), cell(details))
	}
	w("\n")

	// Impact.
	w("## Impact and scope\n\n")
	w("- Requests on route %s from the detection window's start to resolution: %d, of which %d %s (%s of them).\n",
		code(tr.Route), i.Scope.Requests, i.Scope.Failed, failedVerb(tr), pct(safeDiv(i.Scope.Failed, i.Scope.Requests)))
	w("- End users affected: %s, told apart by a keyed hash of the request's `user` or `safety_identifier` (the values themselves are never recorded); %d of the failed requests named no user.\n",
		usersPhrase(i.Scope), i.Scope.FailedWithoutUser)
	w("- Tokens spent on failed requests: %d (%d prompt, %d completion); all tokens on the route in that time: %d.\n",
		i.Cost.FailedTokens, i.Cost.FailedPromptTokens, i.Cost.FailedCompletionTokens, i.Cost.TotalTokens)
	for _, t := range []struct {
		name string
		m    map[string]int64
	}{{"key", i.Scope.ByKey}, {"client", i.Scope.ByClient}, {"target", i.Scope.ByTarget}} {
		w("\nFailed requests by %s:\n\n", t.name)
		if len(t.m) == 0 {
			w("_none recorded_\n")
			continue
		}
		w("| %s | Failed |\n|---|---|\n", strings.ToUpper(t.name[:1])+t.name[1:])
		for _, k := range sortedByCount(t.m) {
			w("| %s | %d |\n", cell(k), t.m[k])
		}
	}
	if i.Scope.Sampled {
		w("\n_The breakdowns were partly rebuilt from sampled records; the totals are exact._\n")
	}
	if len(i.Waves) > 0 {
		w("\n| Wave | Detected (UTC) | Signal | Cohort | Target | Observed value of the signal | Threshold | Requests in the window | Replica | Rolled back |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, v := range i.Waves {
			w("| %d | %s | %s | %s | %s | %s | %s | %d | %s | %t |\n", v.N, ts(v.DetectedAt), v.Signal, cell(v.Cohort), cell(v.Target),
				fmtValue(tr.Unit, v.Observed), fmtValue(tr.Unit, v.Threshold), v.Requests, cell(v.Replica), v.RolledBack)
		}
	}
	w("\n")

	// Root cause.
	w("## Root cause\n\n### Confirmed facts\n\n")
	if tr.Signal != SignalDeclared {
		w("- %s.\n", strings.ToUpper(signalSentence(tr)[:1])+signalSentence(tr)[1:])
	}
	if rs != nil {
		w("- At detection (before any rollback), route %s served %s with prompt version %s and contract mode %s.\n",
			code(tr.Route), weightsSentence(rs), code(orNone(rs.Prompt.Version)), code(orNone(rs.Contract.Mode)))
		if len(rs.Flags) > 0 {
			w("- Flags at detection: %s.\n", code(flagsString(rs.Flags)))
		}
	}
	if len(i.Changes) == 0 {
		w("- No change to the route or the gateway was recorded in the lookback before the first failure.\n")
	}
	for _, e := range i.Changes {
		w("- %s UTC, %s before the first failure: %s.\n", ts(e.At), fmtDur(i.FirstFailureAt.Sub(e.At)), describeEntry(e))
	}
	if s := failureSummary(i.Samples.During); s != "" {
		w("- The first failing samples: %s.\n", s)
	}
	for _, a := range i.Actions {
		if a.Kind == "rollback" || a.Kind == "prompt_revert" {
			if a.OK {
				w("- %s UTC: %s.\n", ts(a.At), a.Message)
			} else {
				w("- %s UTC: %s: %s.\n", ts(a.At), a.Message, a.Error)
			}
		}
	}
	if n := len(i.Samples.After); n > 0 {
		w("- After mitigation, the first %d request(s) on the route succeeded (see the after samples).\n", n)
	}
	w("\n### Hypotheses (unconfirmed)\n\n")
	for _, h := range hypotheses(i, rs) {
		w("- %s\n", h)
	}
	w("\n")

	// Why the checks missed it.
	w("## Why the checks missed it\n\n")
	for _, s := range missedChecks(i, rs) {
		w("- %s\n", s)
	}
	w("\n")

	// Action items.
	deadline := i.OpenedAt.UTC().AddDate(0, 0, 7).Format("2006-01-02") + " (proposed)"
	w("## Action items\n\n| Action | Owner | Deadline | How it is verified |\n|---|---|---|---|\n")
	for _, a := range actionItems(i, rs) {
		w("| %s | _unassigned_ | %s | %s |\n", cell(a[0]), deadline, cell(a[1]))
	}
	w("\n")

	// Lessons.
	w("## Lessons\n\n")
	for _, s := range lessons(i) {
		w("- %s\n", s)
	}
	w("\n")

	// Evidence.
	w("## Evidence\n\n")
	w("- Incident: %s (opened %s UTC by replica %s)\n", code(i.ID), ts(i.OpenedAt), code(orNone(i.Replica)))
	if verr == nil {
		w("- Frozen hash: %s (verified)\n", code(i.FrozenHash))
	} else {
		w("- Frozen hash: %s (**FAILED**: %s)\n", code(i.FrozenHash), verr)
	}
	w("- Config revision %s, release %s, state taken %s UTC\n", code(orNone(i.State.Revision)), code(orNone(i.State.Release)), ts(i.State.TakenAt))
	if rs != nil {
		w("\nFrozen weights of route %s:\n\n| Cohort | Target | Weight | Configured weight |\n|---|---|---|---|\n", code(tr.Route))
		for _, t := range rs.Targets {
			w("| %s | %s/%s | %d | %d |\n", cell(t.Cohort), cell(t.Provider), cell(t.Model), t.Weight, t.ConfiguredWeight)
		}
	}
	w("\nPrompt changes in the lookback:\n\n")
	if pd := promptDiff(i.Changes); len(pd) > 0 {
		for _, s := range pd {
			w("- %s\n", s)
		}
	} else {
		w("_none recorded_")
		if rs != nil {
			w(" (prompt version at detection: %s)", code(orNone(rs.Prompt.Version)))
		}
		w("\n")
	}
	w("\nRequest IDs of the samples:\n\n| Phase | Gateway request ID | Provider request ID | Received (UTC) | Cohort | Target | Outcome | Status | Latency | Contract or error |\n|---|---|---|---|---|---|---|---|---|---|\n")
	more := 0
	for _, ph := range phases(i) {
		recs := ph.recs
		if len(recs) > pmSampleRows {
			more += len(recs) - pmSampleRows
			recs = recs[:pmSampleRows]
		}
		for _, r := range recs {
			why := "—"
			if r.Contract.Verdict == capture.VerdictFail && len(r.Contract.Reasons) > 0 {
				why = clip(r.Contract.Reasons[0], 120)
			} else if r.Error != "" {
				why = clip(r.Error, 120)
			}
			w("| %s | %s | %s | %s | %s | %s/%s | %s | %d | %.0f ms | %s |\n", ph.name, code(r.GatewayRequestID), code(orNone(r.ProviderRequestID)),
				ts(r.ReceivedAt), cell(r.Cohort), cell(r.Provider), cell(r.Model), r.Outcome, r.Status, r.LatencyMS, cell(why))
		}
	}
	if more > 0 {
		w("\n_%d more samples are not listed here: %s has them all._\n", more, code("cairn incidents samples "+i.ID))
	}
	// The samples' masked bodies stay out of the draft (issue 18): a
	// human reads them side by side in the console, a test reads JSONL.
	w("\nThe masked records of the samples, bodies included: the console (%s on the admin listener), %s (JSONL, the fixtures of %s and %s), or %s for one of them.\n",
		code("/ui/#/incidents/"+i.ID), code("cairn incidents samples "+i.ID), code("cairn contract test"), code("cairn replay"), code("cairn requests show ID"))
	return b.String()
}

type phase struct {
	name string
	recs []capture.Record
}

func phases(i *Incident) []phase {
	return []phase{{"before", i.Samples.Before}, {"during", i.Samples.During}, {"after", i.Samples.After}}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func safeDiv(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func fmtValue(unit string, v float64) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.0f ms", v)
	case "tokens":
		return fmt.Sprintf("%.0f", v)
	case "usd":
		return usd(v)
	case "score":
		return fmt.Sprintf("%.4g", v)
	}
	return pct(v)
}

// signalSentence states the trigger with every number named: "the
// contract failure rate was 100%: 20 of 20 requests in a 10s window broke
// their contract, against a threshold of 10%; the contract failure rate of
// cohort stable in the same window was 100%".
func signalSentence(tr Trigger) string {
	name, bad := rateWords(tr.Signal)
	var s string
	switch tr.Signal {
	case SignalLatencyP99:
		s = fmt.Sprintf("the p99 latency was %s over %d requests in a %s window, against a threshold of %s",
			fmtValue(tr.Unit, tr.Observed), tr.Requests, fmtDur(tr.Window.D()), fmtValue(tr.Unit, tr.Threshold))
	case SignalTokensPerSuccess:
		s = fmt.Sprintf("successful responses used %s tokens each over %d requests in a %s window, against a threshold of %s",
			fmtValue(tr.Unit, tr.Observed), tr.Requests, fmtDur(tr.Window.D()), fmtValue(tr.Unit, tr.Threshold))
	default:
		s = fmt.Sprintf("the %s was %s: %d of %d requests in a %s window %s, against a threshold of %s",
			name, fmtValue(tr.Unit, tr.Observed), tr.Failed, tr.Requests, fmtDur(tr.Window.D()), bad, fmtValue(tr.Unit, tr.Threshold))
	}
	if c := baselineClause(tr.Signal, tr.Unit, tr.Baseline, tr.BaselineSource); c != "" {
		s += "; " + c
	}
	return s
}

func actionsOf(i *Incident, kind string) []string {
	var out []string
	for _, a := range i.Actions {
		if a.Kind == kind {
			if a.OK {
				out = append(out, fmt.Sprintf("%s at %s UTC", a.Message, ts(a.At)))
			} else {
				out = append(out, fmt.Sprintf("%s at %s UTC (%s)", a.Message, ts(a.At), a.Error))
			}
		}
	}
	return out
}

func sortedByCount(m map[string]int64) []string {
	ks := slices.Collect(maps.Keys(m))
	slices.SortFunc(ks, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return ks
}

func weightsSentence(rs *configs.RouteState) string {
	var parts []string
	total := 0
	for _, t := range rs.Targets {
		total += t.Weight
	}
	for _, t := range rs.Targets {
		parts = append(parts, fmt.Sprintf("cohort %s → %s/%s at weight %d (%s)", code(t.Cohort), t.Provider, t.Model, t.Weight, pct(safeDiv(int64(t.Weight), int64(total)))))
	}
	if len(parts) == 0 {
		return "no targets"
	}
	return strings.Join(parts, ", ")
}

func flagsString(f map[string]any) string {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Sprint(f)
	}
	return string(b)
}

// failureSummary groups the failing samples by outcome and reason.
func failureSummary(rs []capture.Record) string {
	if len(rs) == 0 {
		return ""
	}
	counts := map[string]int64{}
	for _, r := range rs {
		k := r.Outcome
		if r.Status != 0 {
			k += fmt.Sprintf(" (status %d)", r.Status)
		}
		if r.Contract.Verdict == capture.VerdictFail && len(r.Contract.Reasons) > 0 {
			k += ": " + clip(r.Contract.Reasons[0], 120)
		} else if r.Error != "" {
			k += ": " + clip(r.Error, 120)
		}
		counts[k]++
	}
	var parts []string
	for _, k := range sortedByCount(counts) {
		parts = append(parts, fmt.Sprintf("%d× %s", counts[k], k))
	}
	return strings.Join(parts, "; ")
}

func promptDiff(changes []AuditEntry) []string {
	var out []string
	for _, e := range changes {
		for _, c := range e.Changes {
			if strings.Contains(c.Path, ".prompt.") {
				line := fmt.Sprintf("%s UTC (%s): %s %s → %s", ts(e.At), e.Source, code(c.Path), code(fmtVal(c.From)), code(fmtVal(c.To)))
				if c.Diff != "" {
					// The whole change of the system text, pinned (issue 17).
					line += "\n\n  ```diff\n  " + strings.ReplaceAll(strings.TrimRight(c.Diff, "\n"), "\n", "\n  ") + "\n  ```\n"
				}
				out = append(out, line)
			}
		}
	}
	return out
}

// WriteSamplesJSONL writes the incident's failing samples as JSONL: one
// masked capture.Record per line, the fixture format of `cairn contract
// test`.
func WriteSamplesJSONL(w io.Writer, i *Incident) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for k := range i.Samples.During {
		if err := enc.Encode(&i.Samples.During[k]); err != nil {
			return fmt.Errorf("write samples of %s: %w", i.ID, err)
		}
	}
	return nil
}
