package incidents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// memRing is capture's memory ring as the manager sees it: Recent returns
// the newest records first.
type memRing struct {
	mu   sync.Mutex
	recs []*capture.Record
}

func (r *memRing) add(x *capture.Record) {
	r.mu.Lock()
	r.recs = append(r.recs, x)
	r.mu.Unlock()
}

func (r *memRing) Recent(n int, keep func(*capture.Record) bool) []*capture.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*capture.Record
	for i := len(r.recs) - 1; i >= 0 && len(out) < n; i-- {
		if keep(r.recs[i]) {
			out = append(out, r.recs[i])
		}
	}
	return out
}

func closeManager(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var postmortemSections = []string{
	"# Postmortem draft: ",
	"## Summary",
	"## Timeline (UTC)",
	"## Impact and scope",
	"## Root cause",
	"### Confirmed facts",
	"### Hypotheses (unconfirmed)",
	"## Why the checks missed it",
	"## Action items",
	"| Action | Owner | Deadline | How it is verified |",
	"## Lessons",
	"## Evidence",
}

func checkPostmortem(t *testing.T, md string, inc *Incident) {
	t.Helper()
	at := 0
	for _, s := range postmortemSections {
		i := strings.Index(md[at:], s)
		if i < 0 {
			t.Errorf("postmortem lacks %q after offset %d", s, at)
			continue
		}
		at += i + len(s)
	}
	for _, s := range []string{inc.ID, inc.FrozenHash, "cairn incidents samples " + inc.ID, "cairn replay fixtures.jsonl --route"} {
		if !strings.Contains(md, s) {
			t.Errorf("postmortem lacks %q", s)
		}
	}
	for _, r := range inc.Samples.During {
		if !strings.Contains(md, r.GatewayRequestID) || !strings.Contains(md, r.ProviderRequestID) {
			t.Errorf("postmortem lacks the IDs of sample %s / %s", r.GatewayRequestID, r.ProviderRequestID)
		}
	}
}

// TestManagerCanaryIncident is the drill in miniature: healthy traffic, a
// prompt change by reload, the canary starts breaking its contract.
func TestManagerCanaryIncident(t *testing.T) {
	const window = 2 * time.Second
	dir := t.TempDir()
	live := newFakeLive(twoCohortState(true))
	audit, err := OpenAudit(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	ring := &memRing{}
	m, err := NewManager(Options{
		Detection: testDetection(window, 10), DataDir: dir, State: live, Rollback: live, Audit: audit,
		Recent: ring.Recent, Tick: 50 * time.Millisecond, Replica: "r1",
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	g := &recs{}
	observe := func(r *capture.Record) {
		ring.add(r)
		m.Observe(r)
	}
	ok, cfail := capture.OutcomeOK, capture.OutcomeContractFail

	startup, _ := audit.Append(AuditEntry{Source: SourceStartup, Revision: "rev-1", Changes: configs.Diff(configs.State{}, live.State())})
	// A change to another route must not show up in this incident.
	_, _ = audit.Append(AuditEntry{Source: SourceReload, Revision: "rev-1b", Changes: []configs.Change{{Path: "routes[single].prompt.version", From: "a", To: "b"}}})
	for i := range 60 {
		cohort := "stable"
		if i%4 == 0 {
			cohort = "canary"
		}
		observe(g.make("support-bot", cohort, ok))
		time.Sleep(3 * time.Millisecond)
	}
	change, err := audit.Append(AuditEntry{Source: SourceSIGHUP, Revision: "rev-2", Changes: []configs.Change{
		{Path: "routes[support-bot].prompt.version", From: "v17", To: "v18"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)

	// The canary breaks: every canary response fails its contract.
	var firedAt time.Time
	for i := 0; i < 400 && len(live.rollbacks()) == 0; i++ {
		cohort, outcome := "stable", ok
		if i%4 == 0 && live.live("support-bot", "canary") {
			cohort, outcome = "canary", cfail
		}
		fired := m.det.fired.Load()
		start := time.Now()
		observe(g.make("support-bot", cohort, outcome))
		if firedAt.IsZero() && m.det.fired.Load() > fired {
			firedAt = start
		}
		time.Sleep(2 * time.Millisecond)
	}
	waitFor(t, 2*time.Second, "the rollback", func() bool { return len(live.rollbacks()) > 0 })
	if firedAt.IsZero() {
		t.Fatal("no signal fired")
	}
	took := live.rollbacks()[0].Sub(firedAt)
	t.Logf("signal → rollback: %v", took)
	if took > 200*time.Millisecond {
		t.Errorf("rollback came %v after the signal; want ≈100ms at most", took)
	}
	waitFor(t, 2*time.Second, "the incident", func() bool { return len(m.List()) == 1 })
	id := m.List()[0].ID
	inc, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if inc.Status != StatusMitigated || inc.MitigatedAt == nil {
		t.Fatalf("status = %s; want mitigated right after the automatic rollback", inc.Status)
	}

	// Traffic returns to the stable cohort and stays healthy.
	deadline := time.Now().Add(4 * window)
	for time.Now().Before(deadline) {
		observe(g.make("support-bot", "stable", ok))
		time.Sleep(10 * time.Millisecond)
		if s := m.List()[0]; s.Status == StatusResolved {
			break
		}
	}
	inc, err = m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if inc.Status != StatusResolved || inc.ResolvedAt == nil {
		t.Fatalf("status = %s; want resolved after a healthy window", inc.Status)
	}
	if d := inc.ResolvedAt.Sub(*inc.MitigatedAt); d < window {
		t.Errorf("resolved %v after mitigation; want at least the window %v", d, window)
	}
	if n := len(live.rollbacks()); n != 1 {
		t.Errorf("Rollback called %d times; want 1", n)
	}
	if n := len(m.List()); n != 1 {
		t.Errorf("%d incidents; want 1", n)
	}
	checkCanaryIncident(t, inc, change.ID, startup.ID)

	// The rollback is in the audit log with its diff.
	var rb *AuditEntry
	for _, e := range audit.List(time.Time{}) {
		if e.Source == SourceRollbackAuto {
			rb = &e
		}
	}
	if rb == nil {
		t.Fatal("no rollback:auto audit entry")
	}
	wantChange := configs.Change{Path: "routes[support-bot].targets[canary:openai/gpt-4.1-mini].weight", From: 20, To: 0}
	if !slices.ContainsFunc(rb.Changes, func(c configs.Change) bool {
		return c.Path == wantChange.Path && c.From == wantChange.From && c.To == wantChange.To
	}) || !strings.Contains(rb.Reason, id) {
		t.Errorf("rollback audit entry = %+v; want change %+v and the incident ID", rb, wantChange)
	}

	// Samples as fixtures: one masked record per line.
	var buf bytes.Buffer
	if err := WriteSamplesJSONL(&buf, inc); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(inc.Samples.During) {
		t.Errorf("%d JSONL lines; want %d", len(lines), len(inc.Samples.During))
	}
	for _, l := range lines {
		var r capture.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.GatewayRequestID == "" || r.Contract.Verdict != capture.VerdictFail {
			t.Errorf("fixture line %q: %v", l, err)
		}
	}
	checkPostmortem(t, RenderPostmortem(inc), inc)
	if d := os.Getenv("INCIDENTS_DUMP"); d != "" {
		js, _ := json.MarshalIndent(inc, "", "  ")
		_ = os.WriteFile(d+"/incident.json", js, 0o644)
		_ = os.WriteFile(d+"/postmortem.md", []byte(RenderPostmortem(inc)), 0o644)
	}

	// A restart keeps the incident, intact.
	closeManager(t, m)
	m2, err := NewManager(Options{Detection: testDetection(window, 10), DataDir: dir, State: live, Audit: audit, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeManager(t, m2)
	got, err := m2.Get(id)
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	if err := got.Verify(); err != nil {
		t.Errorf("Verify after restart: %v", err)
	}
	if got.FrozenHash != inc.FrozenHash || got.Status != StatusResolved || len(got.Timeline) != len(inc.Timeline) {
		t.Errorf("after restart: hash %s status %s timeline %d; want %s resolved %d", got.FrozenHash, got.Status, len(got.Timeline), inc.FrozenHash, len(inc.Timeline))
	}
	if l := m2.List(); len(l) != 1 || l[0].ID != id {
		t.Errorf("List after restart = %+v; want [%s]", l, id)
	}
	if _, err := m2.Get("inc_00000000000000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) = %v; want ErrNotFound", err)
	}
	if _, err := m2.Get("../audit"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(../audit) = %v; want ErrNotFound", err)
	}
}

func checkCanaryIncident(t *testing.T, inc *Incident, changeID, startupID string) {
	t.Helper()
	if err := inc.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if !strings.HasPrefix(inc.ID, "inc_") {
		t.Errorf("ID = %q; want inc_…", inc.ID)
	}
	tr := inc.Trigger
	if tr.Signal != SignalContractFailureRate || tr.Route != "support-bot" || tr.Cohort != "canary" || tr.Target != "openai/gpt-4.1-mini" {
		t.Errorf("trigger = %+v; want contract_failure_rate on support-bot/canary/openai/gpt-4.1-mini", tr)
	}
	if tr.Observed < tr.Threshold || tr.Threshold != 0.1 || tr.Requests < 10 || tr.Window.D() != 2*time.Second {
		t.Errorf("trigger figures = %+v", tr)
	}
	if inc.Layer != LayerContract {
		t.Errorf("layer = %q; want contract", inc.Layer)
	}
	if !strings.Contains(inc.Symptom, "responses from canary (openai/gpt-4.1-mini) on route support-bot broke their contract in the last 2s") {
		t.Errorf("symptom = %q", inc.Symptom)
	}
	// Frozen state: before the rollback.
	rs := inc.State.Route("support-bot")
	if rs == nil || rs.Prompt.Version != "v18" || cohortWeight(inc.State, "support-bot", "canary") != 20 || cohortWeight(inc.State, "support-bot", "stable") != 80 {
		t.Errorf("frozen state route = %+v; want canary at 20, stable at 80, prompt v18", rs)
	}
	if !slices.ContainsFunc(inc.Changes, func(e AuditEntry) bool { return e.ID == changeID }) {
		t.Errorf("changes %+v lack the reload %s that preceded the failure", inc.Changes, changeID)
	}
	if !slices.ContainsFunc(inc.Changes, func(e AuditEntry) bool { return e.ID == startupID && len(e.Changes) == 0 }) {
		t.Errorf("changes lack the startup entry (without its whole-config diff)")
	}
	for _, e := range inc.Changes {
		if e.Source == SourceRollbackAuto || e.At.After(inc.FirstFailureAt) {
			t.Errorf("change %+v is not before the first failure %v", e, inc.FirstFailureAt)
		}
		for _, c := range e.Changes {
			if strings.HasPrefix(c.Path, "routes[single]") {
				t.Errorf("change %s of another route in the incident", c.Path)
			}
		}
	}
	if !(inc.FirstFailureAt.Before(inc.DetectedAt) || inc.FirstFailureAt.Equal(inc.DetectedAt)) || inc.MitigatedAt.Before(inc.DetectedAt) {
		t.Errorf("times: first failure %v, detected %v, mitigated %v", inc.FirstFailureAt, inc.DetectedAt, inc.MitigatedAt)
	}
	// Samples carry both IDs.
	checkSamples := func(phase string, rs []capture.Record, want func(capture.Record) bool) {
		if len(rs) == 0 || len(rs) > 5 {
			t.Errorf("%d %s samples; want 1..5", len(rs), phase)
		}
		for _, r := range rs {
			if r.GatewayRequestID == "" || r.ProviderRequestID == "" || !want(r) {
				t.Errorf("%s sample %+v", phase, r)
			}
		}
	}
	checkSamples("before", inc.Samples.Before, func(r capture.Record) bool {
		return r.Outcome == capture.OutcomeOK && r.ReceivedAt.Before(inc.FirstFailureAt)
	})
	checkSamples("during", inc.Samples.During, func(r capture.Record) bool {
		return r.Contract.Verdict == capture.VerdictFail && r.Cohort == "canary"
	})
	checkSamples("after", inc.Samples.After, func(r capture.Record) bool {
		return r.Outcome == capture.OutcomeOK && !r.ReceivedAt.Before(*inc.MitigatedAt)
	})
	if inc.Samples.During[0].ReceivedAt != inc.FirstFailureAt {
		t.Errorf("first failure %v is not the first failing sample's %v", inc.FirstFailureAt, inc.Samples.During[0].ReceivedAt)
	}
	// Scope and cost.
	sc := inc.Scope
	if sc.Failed < 2 || sc.Requests <= sc.Failed || sc.ByTarget["openai/gpt-4.1-mini"] != sc.Failed || sc.ByKey["checkout"] != sc.Failed || sc.ByClient["web"] != sc.Failed {
		t.Errorf("scope = %+v", sc)
	}
	if inc.Cost.FailedTokens != 100*sc.Failed {
		t.Errorf("failed tokens = %d; want %d", inc.Cost.FailedTokens, 100*sc.Failed)
	}
	// Timeline and actions.
	var kinds []string
	for _, e := range inc.Timeline {
		kinds = append(kinds, e.Kind)
		if e.At.Location() != time.UTC {
			t.Errorf("timeline event %+v not in UTC", e)
		}
	}
	for _, k := range []string{EventChange, EventFirstFailure, EventDetection, EventRollback, EventMitigation, EventRecovery} {
		if !slices.Contains(kinds, k) {
			t.Errorf("timeline kinds %q lack %q", kinds, k)
		}
	}
	if !slices.IsSortedFunc(inc.Timeline, func(a, b Event) int { return a.At.Compare(b.At) }) {
		t.Errorf("timeline not in time order")
	}
	if len(inc.Actions) == 0 || inc.Actions[0].Message != "rolled back cohort canary on route support-bot (weight 20→0)" || !inc.Actions[0].OK {
		t.Errorf("actions = %+v", inc.Actions)
	}
	if len(inc.Waves) != 1 || inc.Replica != "r1" {
		t.Errorf("waves %d replica %q; want 1, r1", len(inc.Waves), inc.Replica)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	dir := t.TempDir()
	live := newFakeLive(twoCohortState(false))
	m, err := NewManager(Options{Detection: testDetection(2*time.Second, 10), DataDir: dir, State: live})
	if err != nil {
		t.Fatal(err)
	}
	inc, err := m.Declare("support-bot", "customers report wrong refunds")
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)
	path := incidentPath(dir, inc.ID)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tamper func(*Incident)
		ok     bool
	}{
		{"untouched", func(*Incident) {}, true},
		{"timeline may grow", func(i *Incident) { i.Timeline = append(i.Timeline, Event{Kind: "note"}) }, true},
		{"weights rewritten", func(i *Incident) { i.State.Routes[0].Targets[1].Weight = 0 }, false},
		{"prompt version rewritten", func(i *Incident) { i.State.Routes[0].Prompt.Version = "v17" }, false},
		{"trigger rewritten", func(i *Incident) { i.Trigger.Cohort = "stable" }, false},
		{"change removed", func(i *Incident) { i.Changes = append(i.Changes, AuditEntry{ID: "aud_x"}) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x Incident
			if err := json.Unmarshal(orig, &x); err != nil {
				t.Fatal(err)
			}
			tt.tamper(&x)
			b, _ := json.Marshal(&x)
			if err := os.WriteFile(path, b, 0o640); err != nil {
				t.Fatal(err)
			}
			got, err := LoadIncident(dir, inc.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Verify(); (err == nil) != tt.ok {
				t.Errorf("Verify() = %v; want ok %v", err, tt.ok)
			}
		})
	}
}

func TestDeclareAndManualRollback(t *testing.T) {
	dir := t.TempDir()
	live := newFakeLive(twoCohortState(false))
	audit, err := OpenAudit(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	m, err := NewManager(Options{Detection: testDetection(2*time.Second, 10), DataDir: dir, State: live, Audit: audit, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeManager(t, m)
	g := &recs{}
	for i := range 30 {
		outcome := capture.OutcomeOK
		if i%3 == 0 {
			outcome = capture.OutcomeUpstreamError
		}
		m.Observe(g.make("support-bot", "canary", outcome))
		m.Observe(g.make("support-bot", "stable", capture.OutcomeClientClosed))
	}
	if _, err := m.Declare("nope", "x"); !errors.Is(err, ErrUnknownRoute) {
		t.Errorf("Declare(unknown route) = %v; want ErrUnknownRoute", err)
	}
	inc, err := m.Declare("support-bot", "customers report wrong refunds")
	if err != nil {
		t.Fatal(err)
	}
	if inc.Trigger.Signal != SignalDeclared || inc.Status != StatusOpen || inc.Reason != "customers report wrong refunds" {
		t.Errorf("declared incident = %+v", inc.Summary())
	}
	if err := inc.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if len(inc.Samples.During) != 5 || inc.Scope.Failed != 10 || inc.Trigger.Requests != 30 {
		t.Errorf("declared snapshot: %d during samples, %d failed, %d requests; want 5, 10, 30", len(inc.Samples.During), inc.Scope.Failed, inc.Trigger.Requests)
	}
	if !strings.Contains(inc.Symptom, "customers report wrong refunds") {
		t.Errorf("symptom = %q", inc.Symptom)
	}
	again, err := m.Declare("support-bot", "still broken")
	if err != nil || again.ID != inc.ID || len(again.Waves) != 2 {
		t.Errorf("second Declare = %v, %v; want a wave of %s", again.Summary(), err, inc.ID)
	}

	before, after, err := live.Rollback("support-bot", "canary")
	if err != nil {
		t.Fatal(err)
	}
	m.RecordRollback("support-bot", "canary", "", before, after)
	got, err := m.Get(inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusMitigated || len(got.Actions) != 1 || !strings.Contains(got.Actions[0].Message, "weight 20→0") {
		t.Errorf("after manual rollback: status %s, actions %+v", got.Status, got.Actions)
	}
	entries := audit.List(time.Time{})
	if len(entries) != 1 || entries[0].Source != SourceRollbackManual || entries[0].Route != "support-bot" || len(entries[0].Changes) == 0 {
		t.Errorf("audit = %+v; want one rollback:manual entry with its diff", entries)
	}
	checkPostmortem(t, RenderPostmortem(got), got)
}

// TestManagerLifecycleWithoutRollback runs on a fake clock: without auto
// rollback the incident is mitigated when the signal falls, a repeat is a
// wave that reopens it, it resolves after a healthy window and survives a
// restart in between.
func TestManagerLifecycleWithoutRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = 2 * time.Second
		dir := t.TempDir()
		live := newFakeLive(twoCohortState(false))
		opts := Options{Detection: testDetection(window, 10), DataDir: dir, State: live, Rollback: live, Tick: 100 * time.Millisecond, Replica: "r1"}
		m, err := NewManager(opts)
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		defer func() { closeManager(t, m) }()
		g := &recs{}
		traffic := func(m *Manager, d time.Duration, canary string) {
			for end := time.Now().Add(d); time.Now().Before(end); {
				m.Observe(g.make("support-bot", "stable", capture.OutcomeOK))
				m.Observe(g.make("support-bot", "canary", canary))
				time.Sleep(20 * time.Millisecond)
			}
			synctest.Wait()
		}
		traffic(m, time.Second, capture.OutcomeOK)
		traffic(m, time.Second, capture.OutcomeUpstreamError)
		list := m.List()
		if len(list) != 1 || list[0].Status != StatusOpen || list[0].Signal != SignalErrorRate || list[0].Cohort != "canary" {
			t.Fatalf("incidents = %+v; want one open error_rate incident on canary", list)
		}
		id := list[0].ID
		if n := len(live.rollbacks()); n != 0 {
			t.Errorf("Rollback called %d times with auto_rollback off", n)
		}

		// The canary recovers: once its failures leave the window, the signal
		// falls below its threshold.
		traffic(m, window, capture.OutcomeOK)
		inc, _ := m.Get(id)
		if inc.Status != StatusMitigated || inc.ResolvedAt != nil {
			t.Fatalf("status = %s; want mitigated once the signal fell", inc.Status)
		}

		// A restart while mitigated: the new manager follows the incident,
		// and the canary failing again is a second wave that reopens it.
		closeManager(t, m)
		m, err = NewManager(opts)
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		traffic(m, time.Second, capture.OutcomeUpstreamError)
		inc, _ = m.Get(id)
		if len(inc.Waves) != 2 || inc.Status != StatusOpen {
			t.Fatalf("waves %d status %s; want 2 waves, reopened", len(inc.Waves), inc.Status)
		}
		traffic(m, 3*window, capture.OutcomeOK)
		inc, _ = m.Get(id)
		if inc.Status != StatusResolved {
			t.Fatalf("status = %s; want resolved after healthy windows", inc.Status)
		}
		if len(m.List()) != 1 {
			t.Errorf("%d incidents; want 1", len(m.List()))
		}
		if err := inc.Verify(); err != nil {
			t.Error(err)
		}
		var notes []string
		for _, e := range inc.Timeline {
			notes = append(notes, e.Message)
		}
		if !slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, "no automatic rollback: auto_rollback is off") }) {
			t.Errorf("timeline does not say why there was no rollback: %q", notes)
		}
		// After resolution, a new failure is a new incident.
		traffic(m, time.Second, capture.OutcomeUpstreamError)
		if n := len(m.List()); n != 2 {
			t.Errorf("%d incidents after a new failure; want 2", n)
		}
	})
}
