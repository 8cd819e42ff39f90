package ratelimit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// newTestRedis returns a limiter on its own client (as a separate replica
// would have) over srv.
func newTestRedis(t testing.TB, srv *redistest.Server, o RedisOptions) (*Redis, *redis.Client) {
	t.Helper()
	c, err := NewClient(srv.URL())
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	l := NewRedis(c, o)
	t.Cleanup(func() { l.Close(); c.Close() })
	return l, c
}

// freshWindow waits, if needed, so that at least 5s of the current Redis
// minute remain: tests that count across calls must not straddle windows.
func freshWindow(t testing.TB, c *redis.Client) {
	t.Helper()
	now, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatalf("TIME: %v", err)
	}
	left := time.Minute - time.Duration(now.UnixNano()%int64(time.Minute))
	if left < 5*time.Second {
		time.Sleep(left + 50*time.Millisecond)
	}
}

// logCounter is a slog handler that counts records by level.
type logCounter struct {
	mu   sync.Mutex
	recs []string
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	h.recs = append(h.recs, line)
	return nil
}
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logCounter) WithGroup(string) slog.Handler      { return h }
func (h *logCounter) lines(level string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, l := range h.recs {
		if strings.HasPrefix(l, level+" ") {
			out = append(out, l)
		}
	}
	return out
}

// TestRedisExact: two gateways sharing one Redis, 50 concurrent requests
// each against rpm 20, serve exactly 20.
func TestRedisExact(t *testing.T) {
	srv := redistest.Start(t)
	a, ca := newTestRedis(t, srv, RedisOptions{Timeout: 5 * time.Second})
	b, _ := newTestRedis(t, srv, RedisOptions{Timeout: 5 * time.Second})
	freshWindow(t, ca)
	var admitted, degraded atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 100 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Go(func() {
			<-start
			d := l.Check(context.Background(), "app", Limits{RPM: 20}, fmt.Sprint(i))
			if d.Allowed {
				admitted.Add(1)
			} else if d.Kind != KindRequests || d.RetryAfter <= 0 || d.RetryAfter > time.Minute {
				t.Errorf("refusal = %+v; want kind requests and a retry-after within the minute", d)
			}
			if d.Degraded {
				degraded.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := admitted.Load(); n != 20 {
		t.Errorf("2 limiters x 50 concurrent checks against rpm 20 admitted %d; want exactly 20", n)
	}
	if n := degraded.Load(); n != 0 {
		t.Errorf("%d decisions were degraded; want 0", n)
	}
	var buf bytes.Buffer
	a.WritePrometheus(&buf)
	b.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `cairn_ratelimit_limited_total{key="app",kind="requests"}`) {
		t.Errorf("metrics lack the refusals:\n%s", buf.String())
	}
}

func TestRedisDecisionFields(t *testing.T) {
	srv := redistest.Start(t)
	l, c := newTestRedis(t, srv, RedisOptions{Timeout: 5 * time.Second})
	freshWindow(t, c)
	ctx := context.Background()
	lim := Limits{RPM: 2, TPM: 1000}
	for i := range 2 {
		d := l.Check(ctx, "app", lim, "")
		// Remaining = what Redis has not leased + what this replica holds;
		// a reservation of the mean usage (1 before any charge) is held.
		if !d.Allowed || d.LimitRequests != 2 || d.RemainingRequests != 1-i || d.LimitTokens != 1000 || d.RemainingTokens != 999-i ||
			d.Reservation.Tokens != 1 || d.ResetRequests <= 0 || d.ResetRequests > time.Minute || d.ResetTokens != d.ResetRequests || d.RetryAfter != 0 || d.Degraded {
			t.Errorf("Check #%d = %+v", i+1, d)
		}
	}
	d := l.Check(ctx, "app", lim, "")
	if d.Allowed || d.Kind != KindRequests || d.RemainingRequests != 0 || d.RetryAfter != d.ResetRequests || d.RetryAfter <= 0 || d.NoLease {
		t.Errorf("Check over rpm = %+v; want refused (requests) with retry-after = reset", d)
	}
}

// redisTokens waits until Redis's token count for key settles at want
// (debt is sent in the background) and fails past 3s.
func redisTokens(t *testing.T, c *redis.Client, key string, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, _ := c.HGet(context.Background(), DefaultPrefix+"{"+key+"}", "t").Int()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokens in Redis for %s = %d; want %d", key, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRedisChargeIdempotent: a request ID is charged once however often
// Charge repeats it; charges without a reservation reach Redis as debt.
func TestRedisChargeIdempotent(t *testing.T) {
	srv := redistest.Start(t)
	a, ca := newTestRedis(t, srv, RedisOptions{Timeout: 5 * time.Second})
	freshWindow(t, ca)
	ctx := context.Background()
	lim := Limits{TPM: 1000}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { a.Charge(ctx, "app", lim, "req-1", 50, Reservation{}) })
	}
	wg.Wait()
	a.Charge(ctx, "app", lim, "req-2", 5, Reservation{})
	a.Charge(ctx, "app", lim, "", 1, Reservation{})
	a.Charge(ctx, "app", lim, "", 1, Reservation{})
	redisTokens(t, ca, "app", 57)
	if a.Degraded() {
		t.Errorf("the limiter is degraded after healthy charges")
	}
}

// TestRedisKeysExpire checks that every key the limiter writes carries a
// TTL, so idle keys never pile up.
func TestRedisKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	l, c := newTestRedis(t, srv, RedisOptions{Timeout: 5 * time.Second, Prefix: "t:"})
	ctx := context.Background()
	for i := range 5 {
		k := fmt.Sprintf("key-%d", i)
		d := l.Check(ctx, k, Limits{RPM: 10, TPM: 100}, "")
		l.Charge(ctx, k, Limits{TPM: 100}, fmt.Sprint("req-", i), 10, d.Reservation)
		l.Charge(ctx, "charge-only", Limits{TPM: 100}, fmt.Sprint("req-", i), 10, Reservation{})
	}
	deadline := time.Now().Add(3 * time.Second)
	var keys []string
	for {
		var err error
		keys, err = c.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 5+1+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(keys) != 5+1+1 {
		t.Errorf("keys = %v; want 5 counters, 1 charge-only counter and the replica set", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "t:{") && k != "t:replicas" {
			t.Errorf("key %q lacks the prefix", k)
		}
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 2*time.Minute+time.Second {
			t.Errorf("PTTL(%q) = %v, %v; want a TTL within 2 minutes", k, ttl, err)
		}
	}
}

// TestRedisUnlimitedNoCall: a key without limits never reaches Redis (the
// client points at a closed port and nothing fails).
func TestRedisUnlimitedNoCall(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	l := NewRedis(c, RedisOptions{})
	ctx := context.Background()
	for range 10 {
		if d := l.Check(ctx, "free", Limits{}, "r"); d != (Decision{Allowed: true}) {
			t.Fatalf("Check(no limits) = %+v; want allowed and nothing else", d)
		}
		l.Charge(ctx, "free", Limits{RPM: 10}, "r", 100, Reservation{})
	}
	if n := l.errs.Load(); n != 0 {
		t.Errorf("%d Redis errors for a key without limits; want no Redis call", n)
	}
}

// TestRedisKilled: with Redis gone the limiter keeps deciding locally
// once the breaker opens: fail_closed keys are refused, errors are counted
// and logged without flooding, charges wait as debt, no call hangs.
func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	logs := &logCounter{}
	l, _ := newTestRedis(t, srv, RedisOptions{Replicas: 2, Logger: slog.New(logs)})
	ctx := context.Background()
	if d := l.Check(ctx, "open", Limits{RPM: 10}, ""); !d.Allowed || d.Degraded {
		t.Fatalf("Check with Redis up = %+v; want allowed, not degraded", d)
	}
	srv.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for !l.Degraded() {
		start := time.Now()
		l.Check(ctx, "probe", Limits{RPM: 10}, "")
		if el := time.Since(start); el > l.timeout+100*time.Millisecond {
			t.Errorf("Check with Redis down took %v; want < %v", el, l.timeout+100*time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("breaker still closed 5s after Redis was killed")
		}
	}
	for i := range 20 {
		start := time.Now()
		d := l.Check(ctx, "open", Limits{RPM: 10}, "")
		if el := time.Since(start); el > 50*time.Millisecond {
			t.Errorf("Check #%d with the breaker open took %v; want no wait", i, el)
		}
		if !d.Degraded {
			t.Errorf("Check #%d with Redis down = %+v; want degraded", i, d)
		}
	}
	d := l.Check(ctx, "closed", Limits{RPM: 1000, FailClosed: true}, "")
	if d.Allowed || d.Kind != KindRequests || !d.Degraded || d.RetryAfter <= 0 {
		t.Errorf("fail_closed Check with Redis down = %+v; want refused (requests), degraded, with retry-after", d)
	}
	l.Charge(ctx, "tok", Limits{TPM: 10}, "r1", 50, Reservation{}) // debt, sent when Redis is back
	if d := l.Check(ctx, "tok", Limits{TPM: 10}, ""); d.Allowed || d.Kind != KindTokens {
		t.Errorf("Check after a local charge over the share = %+v; want refused (tokens)", d)
	}

	var buf bytes.Buffer
	l.WritePrometheus(&buf)
	out := buf.String()
	for _, want := range []string{
		"# TYPE cairn_ratelimit_redis_errors_total counter\n",
		"# TYPE cairn_ratelimit_degraded gauge\ncairn_ratelimit_degraded 1\n",
		`cairn_ratelimit_limited_total{key="closed",kind="requests"} 1` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	if n := l.errs.Load(); n < breakerFailures {
		t.Errorf("redis errors = %d; want >= %d", n, breakerFailures)
	}
	if warns := logs.lines("WARN"); len(warns) > 2 {
		t.Errorf("%d warning lines for %d failures; want at most 2 (first failure, breaker open): %q", len(warns), l.errs.Load(), warns)
	}
}

// TestRedisPaused: a hung Redis (SIGSTOP) holds no Check past the
// deadline; keys with a slice keep being served from it without waiting.
func TestRedisPaused(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = 50 * time.Millisecond
	l, _ := newTestRedis(t, srv, RedisOptions{Timeout: timeout})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { l.Check(ctx, "app", Limits{RPM: 1 << 20}, "") })
	}
	wg.Wait()
	srv.Pause()
	defer srv.Resume()
	const slack = 100 * time.Millisecond
	var slow atomic.Int32
	var worst atomic.Int64
	check := func(key string) {
		start := time.Now()
		l.Check(ctx, key, Limits{RPM: 1 << 20}, "")
		el := time.Since(start)
		if el > timeout+slack {
			slow.Add(1)
		}
		for {
			w := worst.Load()
			if int64(el) <= w || worst.CompareAndSwap(w, int64(el)) {
				break
			}
		}
	}
	for range 10 {
		check("app")
		check("cold") // no slice: waits for a lease that never comes
	}
	for i := range 30 {
		wg.Go(func() { check([]string{"app", "cold"}[i%2]) })
	}
	wg.Wait()
	l.Charge(ctx, "app", Limits{TPM: 10}, "r", 5, Reservation{}) // must not hang either
	if n := slow.Load(); n > 0 {
		t.Errorf("%d of 50 checks with Redis hung took longer than %v (worst %v)", n, timeout+slack, time.Duration(worst.Load()))
	}
	t.Logf("worst Check with Redis hung: %v (timeout %v)", time.Duration(worst.Load()), timeout)
	srv.Resume()
	waitShared(t, l)
}

// waitDegraded checks until the breaker opens.
func waitDegraded(t *testing.T, l *Redis) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !l.Degraded() {
		l.Check(context.Background(), "probe", Limits{RPM: 1 << 20}, "")
		if time.Now().After(deadline) {
			t.Fatalf("breaker still closed 5s after Redis went away")
		}
	}
}

// waitShared checks until a decision comes from Redis again.
func waitShared(t *testing.T, l *Redis) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := l.Check(context.Background(), "probe", Limits{RPM: 1 << 20}, "")
		if !d.Degraded {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("limiter still degraded 10s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisRestart: after Redis comes back, shared limiting resumes by
// itself, with no call to make.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	logs := &logCounter{}
	a, ca := newTestRedis(t, srv, RedisOptions{Timeout: time.Second, Logger: slog.New(logs)})
	b, _ := newTestRedis(t, srv, RedisOptions{Timeout: time.Second})
	ctx := context.Background()
	a.Check(ctx, "app", Limits{RPM: 10}, "")
	srv.Kill()
	waitDegraded(t, a)
	srv.Restart()
	waitShared(t, a)
	waitShared(t, b)
	if a.Degraded() {
		t.Errorf("Degraded() after recovery = true")
	}
	if got := logs.lines("INFO"); len(got) != 1 || !strings.Contains(got[0], "resumed") {
		t.Errorf("recovery log lines = %q; want one", got)
	}
	freshWindow(t, ca)
	admitted := 0
	for i := range 30 {
		l := a
		if i%2 == 1 {
			l = b
		}
		d := l.Check(ctx, "after", Limits{RPM: 12}, "")
		if d.Degraded {
			t.Errorf("Check after restart degraded: %+v", d)
		}
		if d.Allowed {
			admitted++
		}
	}
	if admitted != 12 {
		t.Errorf("after restart two limiters admitted %d against rpm 12; want 12 (shared again)", admitted)
	}
}

func TestNewClient(t *testing.T) {
	c, err := NewClient("redis://:s3cret@127.0.0.1:6379/2?pool_size=7")
	if err != nil {
		t.Fatalf("NewClient = %v", err)
	}
	defer c.Close()
	o := c.Options()
	if !o.ContextTimeoutEnabled || o.MaxRetries > 0 || o.PoolSize != 7 || o.DB != 2 || o.DialTimeout != time.Second || o.ReadTimeout != time.Second {
		t.Errorf("options = ContextTimeoutEnabled %v MaxRetries %d PoolSize %d DB %d DialTimeout %v ReadTimeout %v",
			o.ContextTimeoutEnabled, o.MaxRetries, o.PoolSize, o.DB, o.DialTimeout, o.ReadTimeout)
	}
	for _, bad := range []string{"redis://:s3cret@127.0.0.1:6379/x", "http://:s3cret@h", "redis://:s3cret@h:1/0?bogus=1", "redis://:s3cret@[::1"} {
		_, err := NewClient(bad)
		if err == nil {
			t.Errorf("NewClient(%q) = nil error", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("NewClient(%q) error leaks the password: %v", bad, err)
		}
	}
}
