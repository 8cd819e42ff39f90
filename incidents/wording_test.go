package incidents

// Issue 14.8: ordinary chats without response_format sent to the
// quick-start route (a schema contract on two cohorts) fail the contract on
// every cohort. The incident must say what each number counts, must not
// call the failure cohort-specific, and must not claim a mitigation when
// the traffic merely stopped.

import (
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairnhq/cairn/capture"
)

// quickStartIncident runs the quick-start scenario on a fake clock and
// returns the incident once the manager has stopped following it.
func quickStartIncidents(t *testing.T) []*Incident {
	t.Helper()
	var incs []*Incident
	synctest.Test(t, func(t *testing.T) {
		const window = 2 * time.Second
		live := newFakeLive(twoCohortState(true))
		st := live.st.Route("support-bot")
		st.Contract.Mode = "observe"
		m, err := NewManager(Options{Detection: testDetection(window, 10), DataDir: t.TempDir(), State: live, Rollback: live,
			Tick: 100 * time.Millisecond, Replica: "r1"})
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		defer closeManager(t, m)
		g := &recs{}
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			for i := range 5 {
				cohort := "stable"
				if i == 0 {
					cohort = "canary"
				}
				r := g.make("support-bot", cohort, capture.OutcomeContractFail)
				r.Status = 200 // observe mode: the client got the reply
				r.Contract.Reasons = []string{"content is not JSON"}
				m.Observe(r)
			}
			time.Sleep(20 * time.Millisecond)
		}
		synctest.Wait()
		if len(m.List()) == 0 {
			t.Fatal("no incident opened")
		}
		// The clients stop sending.
		time.Sleep(4 * window)
		synctest.Wait()
		for _, s := range m.List() {
			inc, err := m.Get(s.ID)
			if err != nil {
				t.Fatal(err)
			}
			incs = append(incs, inc)
		}
	})
	return incs
}

func TestIncidentTextQuickStartNoResponseFormat(t *testing.T) {
	incs := quickStartIncidents(t)
	// One cause, one incident: the error rate crossed only because of the
	// same contract failures, so it joins as a related signal.
	if len(incs) != 1 || incs[0].Trigger.Signal != SignalContractFailureRate {
		var sigs []string
		for _, i := range incs {
			sigs = append(sigs, i.Trigger.Signal+"/"+i.Trigger.Cohort)
		}
		t.Errorf("incidents = %v; want one contract_failure_rate incident", sigs)
	}
	// A percentage must follow the name of the rate it is, or a count.
	bare := regexp.MustCompile(`(baseline was|stayed at|baseline) \d+(\.\d)?%|\(\d+(\.\d)?% [≥<] \d+(\.\d)?%\)`)
	for _, inc := range incs {
		pm := RenderPostmortem(inc)
		var text []string
		text = append(text, inc.Symptom, pm)
		for _, e := range inc.Timeline {
			text = append(text, e.Message)
		}
		all := strings.Join(text, "\n")
		if m := bare.FindAllString(all, -1); len(m) > 0 {
			t.Errorf("incident %s (%s) prints percentages without saying what they count: %q", inc.ID, inc.Trigger.Signal, m)
		}
		if inc.Status != StatusResolved || inc.Resolution != ResolutionNoTraffic || inc.MitigatedAt != nil {
			t.Errorf("incident %s: status %s, resolution %q, mitigated_at %v; want resolved, no_traffic, never mitigated",
				inc.ID, inc.Status, inc.Resolution, inc.MitigatedAt)
		}
		for _, e := range inc.Timeline {
			if e.Kind == EventMitigation || strings.Contains(e.Message, "mitigated:") {
				t.Errorf("incident %s claims a mitigation nobody made: %q", inc.ID, e.Message)
			}
		}
		for _, want := range []string{
			"resolved without mitigation",
			"**Resolution**: none by Cairn or anyone",
			"The incident was not mitigated: its traffic stopped",
			"is not specific to cohort",
			"asked for no JSON (no response_format)",
		} {
			if !strings.Contains(all, want) {
				t.Errorf("incident %s (%s) lacks %q", inc.ID, inc.Trigger.Signal, want)
			}
		}
		for _, wrong := range []string{"The failure is specific to cohort", "no test before the rollout", "Mitigation came"} {
			if strings.Contains(all, wrong) {
				t.Errorf("incident %s (%s) says %q, which the facts contradict", inc.ID, inc.Trigger.Signal, wrong)
			}
		}
		if inc.Cost.FailedTokens > inc.Cost.TotalTokens {
			t.Errorf("incident %s: %d tokens on failed requests but %d on all requests", inc.ID, inc.Cost.FailedTokens, inc.Cost.TotalTokens)
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("postmortem of %s:\n%s", inc.ID, pm)
			return
		}
	}
}

// Issue 14.7: scope counts the distinct users of the failed requests, and
// replicas' counts merge without counting a user twice.
func TestScopeCountsUsers(t *testing.T) {
	tr := &tracker{pred: predicate{sig: sigError}, byKey: map[string]int64{}, byClient: map[string]int64{},
		byTarget: map[targetKey]int64{}, users: map[string]struct{}{}}
	g := &recs{}
	for i := range 12 {
		r := g.make("support-bot", "stable", capture.OutcomeUpstreamError)
		if i%4 != 3 {
			r.UserHash = []string{"uh_a", "uh_b", "uh_c"}[i%4]
		}
		tr.countFailed(r)
	}
	s := tr.snapshot().scope
	if s.Users != 3 || s.FailedWithoutUser != 3 || s.UsersAtMost || len(s.UserHashes) != 3 {
		t.Fatalf("scope = users %d, without user %d, at most %v, hashes %v; want 3, 3, false, 3", s.Users, s.FailedWithoutUser, s.UsersAtMost, s.UserHashes)
	}
	inc := &Incident{Contributions: map[string]Contribution{
		"r1": {Scope: s},
		"r2": {Scope: Scope{Users: 2, FailedWithoutUser: 1, UserHashes: []string{"uh_c", "uh_d"}}},
	}}
	inc.sumContributions()
	if inc.Scope.Users != 4 || inc.Scope.UsersAtMost || inc.Scope.FailedWithoutUser != 4 {
		t.Errorf("merged users = %d (at most %v), without user %d; want exactly 4 and 4", inc.Scope.Users, inc.Scope.UsersAtMost, inc.Scope.FailedWithoutUser)
	}
	// A replica whose list was too long to keep: the sum, marked as a bound.
	inc.Contributions["r3"] = Contribution{Scope: Scope{Users: 5000}}
	inc.sumContributions()
	if inc.Scope.Users != 5005 || !inc.Scope.UsersAtMost {
		t.Errorf("merged users = %d (at most %v); want 5005, an upper bound", inc.Scope.Users, inc.Scope.UsersAtMost)
	}
	if pm := RenderPostmortem(inc); !strings.Contains(pm, "End users affected: at most 5005 users") {
		t.Errorf("postmortem does not give the bound:\n%s", pm)
	}
}
