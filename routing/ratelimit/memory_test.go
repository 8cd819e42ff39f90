package ratelimit

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is an injectable time source for tests.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }

var t0 = time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC) // 10s into a minute

func TestMemoryRPM(t *testing.T) {
	c := newClock(t0)
	l := NewMemory(c.now)
	ctx := context.Background()
	lim := Limits{RPM: 3}
	for i := range 3 {
		d := l.Check(ctx, "app", lim, "")
		want := Decision{Allowed: true, LimitRequests: 3, RemainingRequests: 2 - i, ResetRequests: 50 * time.Second}
		if d != want {
			t.Errorf("Check #%d = %+v; want %+v", i+1, d, want)
		}
	}
	c.add(20 * time.Second)
	d := l.Check(ctx, "app", lim, "")
	want := Decision{Kind: KindRequests, LimitRequests: 3, ResetRequests: 30 * time.Second, RetryAfter: 30 * time.Second}
	if d != want {
		t.Errorf("Check over RPM = %+v; want %+v", d, want)
	}
	if d := l.Check(ctx, "other", lim, ""); !d.Allowed {
		t.Errorf("Check(other key) = %+v; want allowed (keys are independent)", d)
	}
	c.add(30 * time.Second) // next minute
	if d := l.Check(ctx, "app", lim, ""); !d.Allowed || d.RemainingRequests != 2 || d.ResetRequests != time.Minute {
		t.Errorf("Check in the next window = %+v; want allowed, 2 left, reset 1m", d)
	}
}

func TestMemoryTPM(t *testing.T) {
	c := newClock(t0)
	l := NewMemory(c.now)
	ctx := context.Background()
	lim := Limits{RPM: 100, TPM: 100}
	steps := []struct {
		charge      int
		reqID       string
		wantAllowed bool
		wantKind    string
		wantLeft    int
	}{
		{0, "", true, "", 100},
		{60, "r1", true, "", 40},
		{60, "r2", false, KindTokens, 0}, // 120 > 100: the overshooting reply counted, the next refused
	}
	for i, s := range steps {
		if s.charge > 0 {
			l.Charge(ctx, "app", lim, s.reqID, s.charge, Reservation{})
		}
		d := l.Check(ctx, "app", lim, "")
		if d.Allowed != s.wantAllowed || d.Kind != s.wantKind || d.RemainingTokens != s.wantLeft || d.LimitTokens != 100 {
			t.Errorf("step %d: Check = %+v; want allowed=%v kind=%q remaining tokens %d", i, d, s.wantAllowed, s.wantKind, s.wantLeft)
		}
	}
	c.add(time.Minute)
	if d := l.Check(ctx, "app", lim, ""); !d.Allowed || d.RemainingTokens != 100 {
		t.Errorf("Check in the next window = %+v; want allowed with 100 tokens", d)
	}
	// TPM 0: Charge does nothing.
	l.Charge(ctx, "rpm-only", Limits{RPM: 5}, "x", 1_000_000, Reservation{})
	if _, ok := l.buckets.Load("rpm-only"); ok {
		t.Errorf("Charge with TPM 0 created state")
	}
}

func TestMemoryChargeIdempotent(t *testing.T) {
	c := newClock(t0.Add(45 * time.Second)) // 55s into the minute
	l := NewMemory(c.now)
	ctx := context.Background()
	lim := Limits{TPM: 1000}
	l.Charge(ctx, "app", lim, "req-1", 100, Reservation{})
	l.Charge(ctx, "app", lim, "req-1", 100, Reservation{})
	if d := l.Check(ctx, "app", lim, ""); d.RemainingTokens != 900 {
		t.Errorf("after charging req-1 twice: remaining tokens = %d; want 900", d.RemainingTokens)
	}
	c.add(10 * time.Second) // next window
	l.Charge(ctx, "app", lim, "req-1", 100, Reservation{})
	l.Charge(ctx, "app", lim, "", 7, Reservation{})
	l.Charge(ctx, "app", lim, "", 7, Reservation{}) // no request ID: not deduplicated
	if d := l.Check(ctx, "app", lim, ""); d.RemainingTokens != 986 {
		t.Errorf("after a repeat across the window boundary: remaining tokens = %d; want 986", d.RemainingTokens)
	}
}

func TestMemoryUnlimited(t *testing.T) {
	l := NewMemory(nil)
	for range 100 {
		if d := l.Check(context.Background(), "free", Limits{}, ""); d != (Decision{Allowed: true}) {
			t.Fatalf("Check(no limits) = %+v; want allowed and nothing else", d)
		}
	}
	if _, ok := l.buckets.Load("free"); ok {
		t.Errorf("an unlimited key got a bucket")
	}
}

func TestMemoryClockStepsBack(t *testing.T) {
	c := newClock(t0)
	l := NewMemory(c.now)
	lim := Limits{RPM: 2}
	l.Check(context.Background(), "app", lim, "")
	l.Check(context.Background(), "app", lim, "")
	c.add(-time.Minute)
	if d := l.Check(context.Background(), "app", lim, ""); d.Allowed {
		t.Errorf("Check after the clock stepped back a minute = %+v; want refused (no free window)", d)
	}
}

func TestMemoryConcurrentExact(t *testing.T) {
	l := NewMemory(newClock(t0).now)
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if l.Check(context.Background(), "app", Limits{RPM: 20}, "").Allowed {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 20 {
		t.Errorf("50 concurrent checks against rpm 20 admitted %d; want 20", n)
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name         string
		lim          Limits
		kind         string
		reqs, tokens int
		want         Decision
	}{
		{"rpm only", Limits{RPM: 10}, "", 4, 0, Decision{Allowed: true, LimitRequests: 10, RemainingRequests: 6, ResetRequests: time.Second}},
		{"tpm only", Limits{TPM: 50}, "", 1, 70, Decision{Allowed: true, LimitTokens: 50, ResetTokens: time.Second}},
		{"refused", Limits{RPM: 1, TPM: 5}, KindRequests, 1, 2, Decision{Kind: KindRequests, LimitRequests: 1, ResetRequests: time.Second,
			LimitTokens: 5, RemainingTokens: 3, ResetTokens: time.Second, RetryAfter: time.Second}},
	}
	for _, tt := range tests {
		if got := decide(tt.lim, tt.kind, tt.reqs, tt.tokens, time.Second); got != tt.want {
			t.Errorf("%s: decide(%+v, %q, %d, %d) = %+v; want %+v", tt.name, tt.lim, tt.kind, tt.reqs, tt.tokens, got, tt.want)
		}
	}
}

func TestMemoryMetrics(t *testing.T) {
	c := newClock(t0)
	l := NewMemory(c.now)
	ctx := context.Background()
	l.Check(ctx, "app", Limits{RPM: 1}, "")
	l.Check(ctx, "app", Limits{RPM: 1}, "")
	l.Check(ctx, "app", Limits{RPM: 1}, "")
	l.Check(ctx, "bulk", Limits{TPM: 1}, "")
	l.Charge(ctx, "bulk", Limits{TPM: 1}, "r", 5, Reservation{})
	l.Check(ctx, "bulk", Limits{TPM: 1}, "")
	var buf bytes.Buffer
	l.WritePrometheus(&buf)
	for _, want := range []string{
		"# HELP cairn_ratelimit_limited_total ",
		"# TYPE cairn_ratelimit_limited_total counter\n",
		`cairn_ratelimit_limited_total{key="app",kind="requests"} 2` + "\n",
		`cairn_ratelimit_limited_total{key="app",kind="tokens"} 0` + "\n",
		`cairn_ratelimit_limited_total{key="bulk",kind="tokens"} 1` + "\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("WritePrometheus lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestEscapeLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"app", "app"},
		{`a"b`, `a\"b`},
		{`a\b`, `a\\b`},
		{"a\nb", `a\nb`},
	}
	for _, tt := range tests {
		if got := escapeLabel(tt.in); got != tt.want {
			t.Errorf("escapeLabel(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
