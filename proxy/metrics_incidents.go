package proxy

import (
	"fmt"
	"io"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/incidents"
)

// writeIncidentMetrics writes the unresolved incidents this replica knows:
// counts by severity and status (always both severities and statuses, zeros
// included, so an alert's series exists before the first incident) and one
// info series per incident for dashboards that link to it.
func (g *Gateway) writeIncidentMetrics(w io.Writer) {
	un := g.incidents.Unresolved()
	type key struct{ sev, status string }
	n := map[key]int{}
	for _, u := range un {
		n[key{u.Severity, u.Status}]++
	}
	fmt.Fprintf(w, "# HELP cairn_incidents_open Incidents not yet resolved (open or mitigated) by severity, as this replica knows them.\n# TYPE cairn_incidents_open gauge\n")
	for _, sev := range []configs.Severity{configs.SeverityInvestigate, configs.SeverityPage} {
		for _, st := range []string{incidents.StatusOpen, incidents.StatusMitigated} {
			fmt.Fprintf(w, "cairn_incidents_open{severity=%q,status=%q} %d\n", sev, st, n[key{string(sev), st}])
		}
	}
	fmt.Fprintf(w, "# HELP cairn_incident_info One series per unresolved incident (value 1): its ID, route, cohort, signal, severity, class and status.\n# TYPE cairn_incident_info gauge\n")
	for _, u := range un {
		fmt.Fprintf(w, "cairn_incident_info{id=%q,route=%q,cohort=%q,signal=%q,severity=%q,class=%q,status=%q} 1\n",
			u.ID, u.Route, u.Cohort, u.Signal, u.Severity, u.Class, u.Status)
	}
}
