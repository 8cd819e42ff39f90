package incidents

import (
	"fmt"

	"github.com/cairnhq/cairn/configs"
)

// severityLine says the incident's severity and, when it was raised, from
// what and when.
func severityLine(i *Incident) string {
	s := severityWords(i.Severity, i.Class)
	if i.Trigger.Severity != "" && i.Trigger.Severity != i.Severity {
		s += fmt.Sprintf(" (detected at %s", i.Trigger.Severity)
		for _, e := range i.Timeline {
			if e.Kind == EventSeverityRaised {
				s += ", raised " + ts(e.At) + " UTC"
				break
			}
		}
		s += ")"
	}
	if i.Severity == configs.SeverityInvestigate {
		s += "; automatic rollback acts on page only"
	}
	return s
}

// costLine states the incident's cost in money when any of it was priced.
func costLine(c Cost) string {
	switch {
	case c.FailedCostUSD == nil && c.TotalCostUSD == nil:
		return ""
	case c.FailedCostUSD == nil:
		return usd(*c.TotalCostUSD) + " on the route during the incident (no failed request was priced)"
	case c.TotalCostUSD == nil:
		return usd(*c.FailedCostUSD) + " spent on failed requests"
	}
	return fmt.Sprintf("%s spent on failed requests, of %s on the route during the incident (priced by `pricing:`; unpriced models count as nothing)", usd(*c.FailedCostUSD), usd(*c.TotalCostUSD))
}

// evalGateLines speak to the eval gate, as the playbook asks (dataset gap,
// judge calibration drift, threshold too loose), from what Cairn knew
// when eval_drift fired.
func evalGateLines(i *Incident) []string {
	g := i.Trigger.EvalGate
	if g == nil {
		return nil
	}
	cohort := i.Trigger.Cohort
	if cohort == "" {
		cohort = "the route"
	} else {
		cohort = "cohort " + cohort
	}
	var out []string
	if g.ScoredBefore == 0 {
		out = append(out, fmt.Sprintf("Dataset gap: no request of %s was scored (%q) before the change now live (%s): the eval gate had nothing to compare against before the rollout.", cohort, g.Name, g.Version))
	} else {
		out = append(out, fmt.Sprintf("The eval gate: %d requests of %s were scored (%q) under earlier prompt versions or releases before the change now live (%s).", g.ScoredBefore, cohort, g.Name, g.Version))
	}
	thr := fmt.Sprintf("page at %g points", g.Page)
	if g.Investigate != 0 {
		thr = fmt.Sprintf("investigate at %g points, page at %g", g.Investigate, g.Page)
	}
	out = append(out, fmt.Sprintf("Threshold in force: a drop of %s (one point is %g on the scale [%g, %g]); the mean fell %g points. If the drop hurt users before it crossed, the threshold is too loose.", thr, g.Point, g.Scale[0], g.Scale[1], g.DropPoints))
	enough := "enough"
	if g.CohortScores < g.MinScores || g.BaselineScores < g.MinScores {
		enough = "not enough"
	}
	out = append(out, fmt.Sprintf("Scored traffic: %s had %d scores in the window and its baseline %d; %d a side are needed to reach a verdict: %s for significance. A canary with fewer scored requests than that is invisible to the gate.", cohort, g.CohortScores, g.BaselineScores, g.MinScores, enough))
	out = append(out, "Judge calibration: the scores come from the scorer posting to /admin/scores; a judge whose scale drifted would move every cohort alike, while this drop is against the baseline named above (unconfirmed).")
	return out
}
