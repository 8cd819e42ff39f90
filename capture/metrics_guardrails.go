package capture

// guardMetrics counts the response-side guardrail verdicts (issue 16):
//
//	refusals_total{route,cohort,target}   counter: responses judged refusals
//	pii_leaks_total{route,cohort,target}  counter: responses that leaked
//	                                      personal data or secrets the
//	                                      request did not hold
//
// Labels come from the config (route, cohort, target), never from a
// client's string or a detector's finding.
type guardMetrics struct {
	refusals, piiLeaks *family
}

func newGuardMetrics() guardMetrics {
	return guardMetrics{
		refusals: newFamily("cairn_refusals_total", "Chat responses judged refusals (refusal field, content_filter or a refusal phrase), by route, cohort and target.", "counter",
			[]string{"route", "cohort", "target"}, nil),
		piiLeaks: newFamily("cairn_pii_leaks_total", "Responses whose content or tool-call arguments held personal data or secrets that the request did not (see the record's pii_leak), by route, cohort and target.", "counter",
			[]string{"route", "cohort", "target"}, nil),
	}
}

func (g *guardMetrics) observe(r *Record, target string) {
	if r.Refusal {
		g.refusals.get(r.Route, r.Cohort, target).add(1)
	}
	if len(r.PIILeak) > 0 {
		g.piiLeaks.get(r.Route, r.Cohort, target).add(1)
	}
}

func (g *guardMetrics) families() []*family { return []*family{g.refusals, g.piiLeaks} }
