package incidents

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/internal/redistest"
)

type replica struct {
	m     *Manager
	live  *fakeLive
	audit *Audit
	dir   string
}

func newReplica(t *testing.T, srv *redistest.Server, name string) *replica {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	r := &replica{live: newFakeLive(twoCohortState(true)), dir: t.TempDir()}
	var err error
	if r.audit, err = OpenAudit(r.dir, rdb, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.audit.Close() })
	r.m, err = NewManager(Options{
		Detection: testDetection(2*time.Second, 10), DataDir: r.dir, Redis: rdb, State: r.live,
		Rollback: r.live, Audit: r.audit, Tick: 50 * time.Millisecond, Replica: name,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.m.Start()
	t.Cleanup(func() { closeManager(t, r.m) })
	return r
}

// breakCanary sends healthy traffic, then a canary that breaks its
// contract, until the replica rolls it back.
func (r *replica) breakCanary(t *testing.T, g *recs) {
	t.Helper()
	for i := range 40 {
		cohort := "stable"
		if i%4 == 0 {
			cohort = "canary"
		}
		r.m.Observe(g.make("support-bot", cohort, capture.OutcomeOK))
	}
	for i := 0; i < 200 && len(r.live.rollbacks()) == 0; i++ {
		if i%4 == 0 && r.live.live("support-bot", "canary") {
			r.m.Observe(g.make("support-bot", "canary", capture.OutcomeContractFail))
		} else {
			r.m.Observe(g.make("support-bot", "stable", capture.OutcomeOK))
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, 2*time.Second, "a rollback", func() bool { return len(r.live.rollbacks()) == 1 })
}

func TestRedisOneIncidentAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newReplica(t, srv, "a"), newReplica(t, srv, "b")
	g := &recs{}

	a.breakCanary(t, g)
	waitFor(t, 2*time.Second, "replica a's incident", func() bool { return len(a.m.List()) == 1 })
	id := a.m.List()[0].ID

	b.breakCanary(t, g)
	var inc *Incident
	waitFor(t, 3*time.Second, "replica b's wave", func() bool {
		inc, _ = a.m.Get(id)
		return inc != nil && len(inc.Waves) == 2
	})
	for _, r := range []*replica{a, b} {
		l := r.m.List()
		if len(l) != 1 || l[0].ID != id {
			t.Errorf("replica %s lists %+v; want only %s", r.m.o.Replica, l, id)
		}
	}
	if inc.Waves[0].Replica != "a" || inc.Waves[1].Replica != "b" || !inc.Waves[0].RolledBack || !inc.Waves[1].RolledBack {
		t.Errorf("waves = %+v; want a then b, both rolled back", inc.Waves)
	}
	if n := countKind(inc.Actions, "rollback"); n != 2 {
		t.Errorf("%d rollback actions; want one per replica", n)
	}
	if err := inc.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if inc.Replica != "a" || inc.State.Route("support-bot") == nil || cohortWeight(inc.State, "support-bot", "canary") != 20 {
		t.Errorf("the frozen state is not replica a's pre-rollback state")
	}
	waitFor(t, 3*time.Second, "both replicas' scope", func() bool {
		inc, _ = b.m.Get(id)
		return inc.Contributions["a"].Scope.Failed > 0 && inc.Contributions["b"].Scope.Failed > 0
	})
	if inc.Scope.Failed != inc.Contributions["a"].Scope.Failed+inc.Contributions["b"].Scope.Failed {
		t.Errorf("scope %d is not the sum of the replicas' shares %+v", inc.Scope.Failed, inc.Contributions)
	}
	if _, err := os.Stat(incidentPath(b.dir, id)); err != nil {
		t.Errorf("replica b has no local copy: %v", err)
	}
	// Audit entries are shared: a sees b's rollback.
	entries := a.audit.List(time.Time{})
	if !slices.ContainsFunc(entries, func(e AuditEntry) bool { return e.Source == SourceRollbackAuto && e.Replica == "b" }) {
		t.Errorf("replica a's audit list lacks replica b's rollback: %+v", entries)
	}
}

func TestRedisDownKeepsIncidentsLocal(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv, "a")
	srv.Kill()
	start := time.Now()
	inc, err := a.m.Declare("support-bot", "redis is gone")
	if err != nil {
		t.Fatalf("Declare with Redis down: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Declare took %v with Redis down", took)
	}
	got, err := LoadIncident(a.dir, inc.ID)
	if err != nil || got.Verify() != nil {
		t.Errorf("local copy: %v", err)
	}
	if _, err := a.audit.Append(AuditEntry{Source: SourceReload, Revision: "x"}); err != nil {
		t.Errorf("audit Append with Redis down: %v", err)
	}
	if n := len(a.audit.List(time.Time{})); n != 1 {
		t.Errorf("audit List with Redis down = %d entries; want 1", n)
	}
}

func TestRedisAuditSharedAndPaged(t *testing.T) {
	srv := redistest.Start(t)
	open := func() *Audit {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { rdb.Close() })
		a, err := OpenAudit(t.TempDir(), rdb, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	a, b := open(), open()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for i := range 450 {
		w := a
		if i%2 == 1 {
			w = b
		}
		if _, err := w.Append(AuditEntry{At: t0.Add(time.Duration(i) * time.Hour), Source: SourceReload, Revision: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		since time.Time
		want  int
	}{
		{time.Time{}, 450},
		{t0.Add(100 * time.Hour), 350},
		{t0.Add(440 * time.Hour), 10},
		{t0.Add(1000 * time.Hour), 0},
	}
	for _, tt := range tests {
		got := b.List(tt.since)
		if len(got) != tt.want {
			t.Errorf("List(%v) = %d entries; want %d", tt.since, len(got), tt.want)
		}
		if !slices.IsSortedFunc(got, func(x, y AuditEntry) int { return x.At.Compare(y.At) }) {
			t.Errorf("List(%v) is not oldest first", tt.since)
		}
	}
}
