package routing

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

const testConfig = `
providers:
  - { name: openai, base_url: "https://api.openai.com/v1" }
  - { name: groq, base_url: "https://api.groq.com/openai/v1" }
  - { name: local, base_url: "http://127.0.0.1:9999/v1" }
routes:
  - name: support-bot
    sticky: user
    targets:
      - { provider: openai, model: gpt-4o-mini, weight: 80 }
      - { provider: groq, model: llama, weight: 20, cohort: canary }
    fallbacks:
      - { provider: openai, model: gpt-4o-mini }
      - { provider: local, model: small }
      - { provider: openai, model: gpt-4.1-mini }
  - name: three
    targets:
      - { provider: openai, model: a, weight: 50 }
      - { provider: openai, model: b, weight: 30, cohort: canary }
      - { provider: openai, model: c, weight: 20, cohort: beta }
  - name: split
    targets:
      - { provider: openai, model: x, weight: 3 }
      - { provider: groq, model: y, weight: 1 }
    fallbacks:
      - { provider: local, model: small }
  - name: even
    targets:
      - { provider: openai, model: a, weight: 1 }
      - { provider: openai, model: b, weight: 1, cohort: canary }
  - name: gpt
    match: ["gpt-4o*", "o[0-9]*"]
    targets:
      - { provider: openai }
  - name: catch-all
    match: ["*", "gpt-4o-mini"]
    targets:
      - { provider: local }
  - name: disabled-target
    targets:
      - { provider: openai, model: on, weight: 1 }
      - { provider: groq, model: off, weight: 0, cohort: canary }
`

func loadConfig(t testing.TB, y string) *configs.Config {
	t.Helper()
	cfg, err := configs.Load([]byte(y), configs.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatalf("configs.Load: %v", err)
	}
	return cfg
}

func newTestTable(t testing.TB) (*Table, *Breakers) {
	t.Helper()
	b := NewBreakers(5, 30*time.Second, nil)
	return NewTable(loadConfig(t, testConfig), b), b
}

func TestMatch(t *testing.T) {
	tb, _ := newTestTable(t)
	tests := []struct {
		model, want string
	}{
		{"support-bot", "support-bot"},
		{"three", "three"},
		{"gpt-4o", "gpt"},
		{"gpt-4o-mini", "gpt"}, // first matching route in order wins
		{"o3", "gpt"},
		{"o3-mini", "gpt"},
		{"claude", "catch-all"},
		{"gpt", "gpt"}, // exact name before any glob
		{"catch-all", "catch-all"},
	}
	for _, tt := range tests {
		r := tb.Match(tt.model)
		if r == nil || r.Name != tt.want {
			t.Errorf("Match(%q) = %v; want route %q", tt.model, routeName(r), tt.want)
		}
	}
	noGlob := NewTable(loadConfig(t, `
providers: [{ name: openai, base_url: "https://api.openai.com/v1" }]
routes:
  - { name: a, match: ["gpt-*"], targets: [{ provider: openai }] }
`), NewBreakers(0, 0, nil))
	for _, m := range []string{"", "b", "gpt", "claude-3"} {
		if r := noGlob.Match(m); r != nil {
			t.Errorf("Match(%q) = %q; want nil", m, r.Name)
		}
	}
}

func routeName(r *Route) string {
	if r == nil {
		return "<nil>"
	}
	return r.Name
}

func TestTargetNames(t *testing.T) {
	tb, _ := newTestTable(t)
	tests := []struct {
		route           string
		i               int
		requested       string
		wantUp, wantNme string
	}{
		{"support-bot", 0, "support-bot", "gpt-4o-mini", "openai/gpt-4o-mini"},
		{"gpt", 0, "gpt-4o-2024", "gpt-4o-2024", "openai/gpt-4o-2024"},
	}
	for _, tt := range tests {
		tg := tb.Route(tt.route).Targets[tt.i]
		if got := tg.UpstreamModel(tt.requested); got != tt.wantUp {
			t.Errorf("UpstreamModel(%q) = %q; want %q", tt.requested, got, tt.wantUp)
		}
		if got := tg.Name(tt.requested); got != tt.wantNme {
			t.Errorf("Name(%q) = %q; want %q", tt.requested, got, tt.wantNme)
		}
	}
}

// TestCohortSplit checks that sticky hashing splits distinct callers by
// the configured weights.
func TestCohortSplit(t *testing.T) {
	tb, _ := newTestTable(t)
	const n = 100_000
	tests := []struct {
		route string
		want  map[string]float64 // cohort -> share
	}{
		{"support-bot", map[string]float64{"stable": 0.8, "canary": 0.2}},
		{"three", map[string]float64{"stable": 0.5, "canary": 0.3, "beta": 0.2}},
		// 1:1 would fail with bare FNV-1a: its low bit is the parity of
		// the input bytes' low bits.
		{"even", map[string]float64{"stable": 0.5, "canary": 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			r := tb.Route(tt.route)
			counts := map[string]int{}
			var buf [8]*Target
			for i := range n {
				_, c := r.Plan(buf[:0], fmt.Sprintf("user-%d", i), 0)
				counts[c]++
			}
			for c, want := range tt.want {
				got := float64(counts[c]) / n
				if got < want-0.015 || got > want+0.015 {
					t.Errorf("cohort %s share = %.4f over %d users; want %.2f ± 0.015", c, got, n, want)
				}
			}
		})
	}
}

// TestTargetSplitWithinCohort checks the weighted pick inside one cohort,
// both sticky and random.
func TestTargetSplitWithinCohort(t *testing.T) {
	tb, _ := newTestTable(t)
	r := tb.Route("split")
	const n = 100_000
	for _, sticky := range []bool{true, false} {
		counts := map[string]int{}
		var buf [8]*Target
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range n {
			s := ""
			if sticky {
				s = fmt.Sprintf("caller-%d", i)
			}
			p, _ := r.Plan(buf[:0], s, rng.Uint64())
			counts[p[0].Model]++
		}
		if got := float64(counts["x"]) / n; got < 0.735 || got > 0.765 {
			t.Errorf("sticky=%v: share of x (weight 3 of 4) = %.4f; want 0.75 ± 0.015", sticky, got)
		}
	}
}

func TestRandomSplit(t *testing.T) {
	tb, _ := newTestTable(t)
	r := tb.Route("support-bot")
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 100_000
	canary := 0
	var buf [8]*Target
	for range n {
		if _, c := r.Plan(buf[:0], "", rng.Uint64()); c == "canary" {
			canary++
		}
	}
	if got := float64(canary) / n; got < 0.185 || got > 0.215 {
		t.Errorf("canary share without sticky value = %.4f; want 0.20 ± 0.015", got)
	}
}

// TestStickiness checks that a sticky value always gets the same cohort and
// target, whatever rnd says, in tables built independently (another
// replica, a restart) and in a fixed, known cohort (changing the hash
// would move every user).
func TestStickiness(t *testing.T) {
	a, _ := newTestTable(t)
	b, _ := newTestTable(t) // another replica
	for i := range 1000 {
		user := fmt.Sprintf("u%d", i)
		var buf [8]*Target
		p0, c0 := a.Route("support-bot").Plan(buf[:0], user, 0)
		first := p0[0]
		for j := range 5 {
			var buf2 [8]*Target
			tb := a
			if j%2 == 1 {
				tb = b
			}
			p, c := tb.Route("support-bot").Plan(buf2[:0], user, uint64(j)*0x9e3779b97f4a7c15)
			if c != c0 || p[0].Provider.Name != first.Provider.Name || p[0].Model != first.Model {
				t.Fatalf("Plan(%q) try %d = %s/%s; want %s/%s", user, j, c, p[0].Name(""), c0, first.Name(""))
			}
		}
		if got := a.Route("support-bot").CohortFor(user); got != c0 {
			t.Errorf("CohortFor(%q) = %q; Plan said %q", user, got, c0)
		}
	}
	// Pinned assignments: these must never change between releases.
	pinned := map[string]string{}
	for i := range 12 {
		pinned[fmt.Sprintf("user-%d", i)] = a.Route("support-bot").CohortFor(fmt.Sprintf("user-%d", i))
	}
	want := map[string]string{
		"user-0": "canary", "user-1": "stable", "user-2": "stable", "user-3": "stable",
		"user-4": "canary", "user-5": "stable", "user-6": "stable", "user-7": "stable",
		"user-8": "stable", "user-9": "stable", "user-10": "stable", "user-11": "canary",
	}
	for u, c := range want {
		if pinned[u] != c {
			t.Errorf("CohortFor(%q) = %q; want %q (the sticky hash changed)", u, pinned[u], c)
		}
	}
}

func names(p []*Target) []string {
	out := make([]string, len(p))
	for i, t := range p {
		out[i] = t.Name("req")
	}
	return out
}

func TestPlanOrdering(t *testing.T) {
	// A user in the support-bot stable cohort and one in its canary.
	tb0, _ := newTestTable(t)
	var stableUser, canaryUser string
	for i := 0; stableUser == "" || canaryUser == ""; i++ {
		u := fmt.Sprintf("u%d", i)
		if tb0.Route("support-bot").CohortFor(u) == "stable" {
			stableUser = u
		} else {
			canaryUser = u
		}
	}
	tests := []struct {
		name       string
		route      string
		sticky     string
		open       []string // provider/model circuits to open first
		want       []string
		wantCohort string
	}{
		{
			name: "healthy stable: primary, then fallbacks without the duplicate", route: "support-bot", sticky: stableUser,
			want: []string{"openai/gpt-4o-mini", "local/small", "openai/gpt-4.1-mini"}, wantCohort: "stable",
		},
		{
			name: "healthy canary", route: "support-bot", sticky: canaryUser,
			want: []string{"groq/llama", "openai/gpt-4o-mini", "local/small", "openai/gpt-4.1-mini"}, wantCohort: "canary",
		},
		{
			name: "open primary is skipped", route: "support-bot", sticky: canaryUser, open: []string{"groq/llama"},
			want: []string{"openai/gpt-4o-mini", "local/small", "openai/gpt-4.1-mini"}, wantCohort: "canary",
		},
		{
			name: "open fallback is skipped", route: "support-bot", sticky: stableUser, open: []string{"local/small"},
			want: []string{"openai/gpt-4o-mini", "openai/gpt-4.1-mini"}, wantCohort: "stable",
		},
		{
			name: "open primary equal to a fallback is not retried", route: "support-bot", sticky: stableUser, open: []string{"openai/gpt-4o-mini"},
			want: []string{"local/small", "openai/gpt-4.1-mini"}, wantCohort: "stable",
		},
		{
			name: "all open: the primary anyway", route: "support-bot", sticky: canaryUser,
			open: []string{"groq/llama", "openai/gpt-4o-mini", "local/small", "openai/gpt-4.1-mini"},
			want: []string{"groq/llama"}, wantCohort: "canary",
		},
		{
			name: "open primary replaced by its cohort sibling", route: "split", sticky: "", open: []string{"openai/x"},
			want: []string{"groq/y", "local/small"}, wantCohort: "stable",
		},
		{
			name: "no fallbacks", route: "three", sticky: "", want: []string{"openai/a"}, wantCohort: "stable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, b := newTestTable(t)
			for _, o := range tt.open {
				prov, model, _ := strings.Cut(o, "/")
				h := b.Health(prov, model)
				for range 5 {
					h.Failure()
				}
				if h.State() != StateOpen {
					t.Fatalf("%s state = %s after 5 failures; want open", o, h.State())
				}
			}
			var buf [8]*Target
			p, c := tb.Route(tt.route).Plan(buf[:0], tt.sticky, 0)
			if !slices.Equal(names(p), tt.want) || c != tt.wantCohort {
				t.Errorf("Plan(%q) = %v, %q; want %v, %q", tt.sticky, names(p), c, tt.want, tt.wantCohort)
			}
		})
	}
}

func TestPlanAppends(t *testing.T) {
	tb, _ := newTestTable(t)
	sentinel := &Target{Model: "sentinel"}
	dst := []*Target{sentinel}
	p, _ := tb.Route("three").Plan(dst, "", 0)
	if len(p) != 2 || p[0] != sentinel {
		t.Errorf("Plan(dst with 1 element) = %v; want the element kept and one target appended", names(p[1:]))
	}
}

func TestDisabledTargetNeverPicked(t *testing.T) {
	tb, _ := newTestTable(t)
	r := tb.Route("disabled-target")
	var buf [8]*Target
	for i := range 1000 {
		p, c := r.Plan(buf[:0], fmt.Sprint(i), uint64(i))
		if c != "stable" || p[0].Model != "on" {
			t.Fatalf("Plan picked %s in cohort %s; want the weighted target only", p[0].Name(""), c)
		}
	}
	s := tb.State()
	st := s.Route("disabled-target")
	if st.Targets[1].Weight != 0 || st.Targets[1].ConfiguredWeight != 0 || len(st.RolledBack) != 0 {
		t.Errorf("state of a weight-0 target = %+v, rolled back %v", st.Targets[1], st.RolledBack)
	}
}

func TestWithoutCohort(t *testing.T) {
	tb, _ := newTestTable(t)
	tests := []struct {
		route, cohort string
		wantErr       error
	}{
		{"nope", "canary", ErrUnknownRoute},
		{"support-bot", "nope", ErrUnknownCohort},
		{"disabled-target", "canary", ErrRolledBack},
		{"disabled-target", "stable", ErrLastCohort},
		{"support-bot", "canary", nil},
		{"support-bot", "stable", nil},
	}
	for _, tt := range tests {
		_, err := tb.WithoutCohort(tt.route, tt.cohort)
		if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("WithoutCohort(%q, %q) = %v; want %v", tt.route, tt.cohort, err, tt.wantErr)
		}
	}

	nt, err := tb.WithoutCohort("support-bot", "canary")
	if err != nil {
		t.Fatal(err)
	}
	// The old table is untouched.
	if got := tb.Route("support-bot").Cohorts(); !slices.Equal(got, []string{"stable", "canary"}) {
		t.Errorf("old table cohorts = %v; want [stable canary]", got)
	}
	r := nt.Route("support-bot")
	if got := r.Cohorts(); !slices.Equal(got, []string{"stable"}) {
		t.Errorf("new table cohorts = %v; want [stable]", got)
	}
	if nt.Match("support-bot") != r || nt.Route("three") != tb.Route("three") {
		t.Errorf("new table does not serve the new route or lost the others")
	}
	var buf [8]*Target
	for i := range 2000 {
		if p, c := r.Plan(buf[:0], fmt.Sprint(i), uint64(i)); c != "stable" || p[0].Cohort != "stable" {
			t.Fatalf("Plan after rollback picked cohort %s (%s)", c, p[0].Name(""))
		}
	}
	if r.Targets[1].Health != tb.Route("support-bot").Targets[1].Health {
		t.Errorf("rolled-back target lost its health")
	}
	ns := nt.State()
	st := ns.Route("support-bot")
	want := []configs.TargetState{
		{Provider: "openai", Model: "gpt-4o-mini", Cohort: "stable", Weight: 80, ConfiguredWeight: 80},
		{Provider: "groq", Model: "llama", Cohort: "canary", Weight: 0, ConfiguredWeight: 20},
	}
	if !slices.Equal(st.Targets, want) || !slices.Equal(st.RolledBack, []string{"canary"}) {
		t.Errorf("State after rollback = %+v rolled back %v; want %+v [canary]", st.Targets, st.RolledBack, want)
	}
	if _, err := nt.WithoutCohort("support-bot", "canary"); !errors.Is(err, ErrRolledBack) {
		t.Errorf("second rollback = %v; want ErrRolledBack", err)
	}
	if _, err := nt.WithoutCohort("support-bot", "stable"); !errors.Is(err, ErrLastCohort) {
		t.Errorf("rolling back the last cohort = %v; want ErrLastCohort", err)
	}
	if d := configs.Diff(tb.State(), nt.State()); len(d) != 1 || d[0].Path != "routes[support-bot].targets[canary:groq/llama].weight" {
		t.Errorf("Diff(before, after) = %+v; want the canary weight only", d)
	}
}

func TestBreakersSharedAcrossTables(t *testing.T) {
	b := NewBreakers(5, 30*time.Second, nil)
	t1 := NewTable(loadConfig(t, testConfig), b)
	t2 := NewTable(loadConfig(t, testConfig), b)
	h1, h2 := t1.Route("support-bot").Targets[0].Health, t2.Route("support-bot").Targets[0].Health
	if h1 != h2 {
		t.Fatalf("a reloaded table got a new Health for openai/gpt-4o-mini")
	}
	// The fallback naming the same upstream shares it too.
	if f := t2.Route("support-bot").Fallbacks[0].Health; f != h1 {
		t.Errorf("fallback openai/gpt-4o-mini has its own Health")
	}
}

func TestLiveRollback(t *testing.T) {
	tb, _ := newTestTable(t)
	l := NewLive(tb)
	before, after, err := l.Rollback("support-bot", "canary")
	if err != nil {
		t.Fatalf("Rollback = %v", err)
	}
	if got := before.Route("support-bot").Cohorts(); !slices.Equal(got, []string{"stable", "canary"}) {
		t.Errorf("before cohorts = %v", got)
	}
	if got := after.Route("support-bot").Cohorts(); !slices.Equal(got, []string{"stable"}) {
		t.Errorf("after cohorts = %v", got)
	}
	if l.Load() == tb {
		t.Errorf("Rollback did not replace the table")
	}
	if _, _, err := l.Rollback("support-bot", "stable"); !errors.Is(err, ErrLastCohort) {
		t.Errorf("Rollback(last cohort) = %v; want ErrLastCohort", err)
	}
	// A reload of the same config keeps the rollback (issue 17).
	_, after, cleared := l.Reload(tb)
	if got := after.Route("support-bot").Cohorts(); !slices.Equal(got, []string{"stable"}) || len(cleared) != 0 {
		t.Errorf("after a reload of the same config cohorts = %v, cleared %v; want [stable], none", got, cleared)
	}
}

// TestLiveConcurrent runs plans, rollbacks and stores at once; with -race
// it checks the table is safe to share, and that concurrent rollbacks of
// different cohorts are all kept (CAS, no lost update).
func TestLiveConcurrent(t *testing.T) {
	for round := range 20 {
		tb, _ := newTestTable(t)
		l := NewLive(tb)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf [8]*Target
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r := l.Load().Match("three")
					p, _ := r.Plan(buf[:0], fmt.Sprint(w, i), uint64(i))
					p[0].Health.Success()
					_ = l.Load().State()
				}
			}()
		}
		errs := make(chan error, 2)
		for _, c := range []string{"canary", "beta"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := l.Rollback("three", c)
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: Rollback = %v", round, err)
			}
		}
		close(stop)
		wg.Wait()
		ls := l.Load().State()
		st := ls.Route("three")
		if got := st.Cohorts(); !slices.Equal(got, []string{"stable"}) {
			t.Fatalf("round %d: cohorts after two concurrent rollbacks = %v; want [stable]", round, got)
		}
		rb := slices.Sorted(slices.Values(st.RolledBack))
		if !slices.Equal(rb, []string{"beta", "canary"}) {
			t.Fatalf("round %d: rolled back = %v; want [beta canary]", round, rb)
		}
	}
}

// TestPlanCohortSibling checks that when the picked target's circuit is
// open, a live sibling in the same cohort serves instead, for every caller.
func TestPlanCohortSibling(t *testing.T) {
	tb, b := newTestTable(t)
	r := tb.Route("split")
	var buf [8]*Target
	pickedX := 0
	for i := range 200 {
		if p, _ := r.Plan(buf[:0], "", uint64(i)); p[0].Model == "x" {
			pickedX++
		}
	}
	if pickedX == 0 {
		t.Fatal("no plan picked openai/x while healthy")
	}
	h := b.Health("openai", "x")
	for range 5 {
		h.Failure()
	}
	for i := range 200 {
		p, c := r.Plan(buf[:0], "", uint64(i))
		if got := names(p); !slices.Equal(got, []string{"groq/y", "local/small"}) || c != "stable" {
			t.Fatalf("Plan(rnd=%d) with openai/x open = %v, %q; want [groq/y local/small], stable", i, got, c)
		}
	}
}
