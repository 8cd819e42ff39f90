package proxy

// Issue 3: per-key RPM/TPM limits at the gateway, in memory and through a
// real redis-server (internal/redistest), on loopback sockets.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/cairnhq/cairn/loadtest"
	"github.com/cairnhq/cairn/routing/ratelimit"
)

// rlRedisTimeout is ratelimit.redis_timeout in the Redis test configs:
// above the 25ms default so a check never misses it under -race on a busy
// 2-core box, and what the hung-Redis tests hold every request to.
const rlRedisTimeout = 100 * time.Millisecond

// rlSlack is what a request may take beyond the limiter's deadline with
// Redis hung: the rest of the gateway and the mock on loopback, under -race.
const rlSlack = 250 * time.Millisecond

const rlConfig = `
data_dir: {{DATA}}
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 2s }
  - { name: backup, base_url: "http://%s/v1", timeout: 2s }
keys:
  - { name: free, key_env: FREE_KEY }
  - { name: both, key_env: BOTH_KEY, rpm: 1000, tpm: 1000000 }
  - { name: rpm, key_env: RPM_KEY, rpm: 2 }
  - { name: tpm-plain, key_env: TPM_PLAIN_KEY, tpm: 5000 }
  - { name: tpm-stream-usage, key_env: TPM_STREAM_USAGE_KEY, tpm: 5000 }
  - { name: tpm-stream, key_env: TPM_STREAM_KEY, tpm: 5000 }
  - { name: up429, key_env: UP429_KEY, rpm: 5 }
  - { name: open, key_env: OPEN_KEY, rpm: 40 }
  - { name: closed, key_env: CLOSED_KEY, rpm: 100, fail_closed: true }
routes:
  - name: support-bot
    targets:
      - { provider: primary, model: upstream-model }
    fallbacks:
      - { provider: backup, model: backup-model }
`

// rlEnv maps each key name to its secret: the key "rpm" is "gw-rpm".
var rlEnv = func() map[string]string {
	env := map[string]string{}
	for _, k := range []string{"free", "both", "rpm", "tpm-plain", "tpm-stream-usage", "tpm-stream", "up429", "open", "closed"} {
		env[strings.ToUpper(strings.ReplaceAll(k, "-", "_"))+"_KEY"] = "gw-" + k
	}
	return env
}()

// rlGateway is a gateway on two mocks, limiting in memory or through a
// real Redis.
type rlGateway struct {
	*testGateway
	m1, m2 *loadtest.Mock
	srv    *redistest.Server // nil: in-memory limiter
	rc     *redis.Client     // the test's own view of srv
}

func startRL(t *testing.T, backend string) *rlGateway {
	t.Helper()
	m1, a1 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "p1"})
	m2, a2 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "p2"})
	cfg := fmt.Sprintf(rlConfig, a1, a2)
	g := &rlGateway{m1: m1, m2: m2}
	if backend == "redis" {
		g.srv = redistest.Start(t)
		g.rc = redis.NewClient(&redis.Options{Addr: g.srv.Addr, MaxRetries: -1})
		t.Cleanup(func() { g.rc.Close() })
		// Eight replicas: while Redis fails, each admits an eighth locally.
		cfg += fmt.Sprintf("redis_url: %s\nratelimit: { redis_timeout: %s, replicas: 8 }\n", g.srv.URL(), rlRedisTimeout)
	}
	g.testGateway = startGateway(t, cfg, rlEnv)
	return g
}

// freshMinute waits, if needed, until at least 5s of the current minute
// remain, so counts taken across requests never straddle two windows.
// Memory and Redis (TIME) read the same host clock.
func freshMinute(t *testing.T) {
	t.Helper()
	left := time.Minute - time.Duration(time.Now().UnixNano()%int64(time.Minute))
	if left < 5*time.Second {
		time.Sleep(left + 50*time.Millisecond)
	}
}

// post sends a chat request with the key named name and reports how long
// it took.
func (g *rlGateway) post(t *testing.T, name, body string) (result, time.Duration) {
	t.Helper()
	start := time.Now()
	r := do(t, "POST", g.api+"/v1/chat/completions", "gw-"+name, body)
	return r, time.Since(start)
}

// recordByID waits for the capture record of one gateway request.
func (g *rlGateway) recordByID(t *testing.T, id string) capture.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, r := range g.records(t, 0) {
			if r.GatewayRequestID == id {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no capture record for %s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCharged waits until the Redis limiter of this replica counts
// exactly want tokens for key in the window (charges settle in memory and
// reach Redis as debt in the background). The in-memory limiter is
// charged before the response is sent, so there is nothing to wait for;
// callers then check the next response's headers.
func (g *rlGateway) waitCharged(t *testing.T, key string, want int) {
	t.Helper()
	rl, ok := g.limiter.(*ratelimit.Redis)
	if !ok {
		return
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := rl.TokensCharged(key)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokens charged to %s = %d; want %d", key, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitChargesSent waits until no token charge is queued or in flight.
func (g *rlGateway) waitChargesSent(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for g.chargesPending.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d charges still pending after 3s", g.chargesPending.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// redisRequests returns the request count Redis holds for key.
func (g *rlGateway) redisRequests(t *testing.T, key string) int {
	t.Helper()
	n, err := g.rc.HGet(context.Background(), ratelimit.DefaultPrefix+"{"+key+"}", "r").Int()
	if err != nil && err != redis.Nil {
		t.Fatalf("HGET: %v", err)
	}
	return n
}

// metric returns the value of one series on /metrics, e.g.
// `cairn_ratelimit_degraded` or `cairn_ratelimit_limited_total{key="rpm",kind="requests"}`.
func (g *rlGateway) metric(t *testing.T, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s = %q: %v", series, v, err)
			}
			return f, true
		}
	}
	return 0, false
}

var rlHeaderNames = []string{
	"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
	"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
}

// resetRe matches OpenAI's reset durations: "12ms", "59s", "1m0s".
var resetRe = regexp.MustCompile(`^(\d+ms|(\d+m)?\d+s)$`)

// checkRLHeaders checks the x-ratelimit-* headers: each dimension with a
// limit (0: none) has its triple with a well-formed reset, the others have
// none.
func checkRLHeaders(t *testing.T, h http.Header, rpm, tpm int) {
	t.Helper()
	for i, limit := range []int{rpm, tpm} {
		names := rlHeaderNames[3*i : 3*i+3]
		if limit == 0 {
			for _, n := range names {
				if v := h.Get(n); v != "" {
					t.Errorf("header %s = %q on a key without that limit", n, v)
				}
			}
			continue
		}
		if got := h.Get(names[0]); got != strconv.Itoa(limit) {
			t.Errorf("header %s = %q; want %d", names[0], got, limit)
		}
		if rem, err := strconv.Atoi(h.Get(names[1])); err != nil || rem < 0 || rem > limit {
			t.Errorf("header %s = %q; want 0..%d", names[1], h.Get(names[1]), limit)
		}
		if got := h.Get(names[2]); !resetRe.MatchString(got) {
			t.Errorf("header %s = %q; want a duration like 59s or 12ms", names[2], got)
		}
	}
}

// checkLimited checks a key's own 429: retry-after, retry-after-ms, the
// limit headers, and the OpenAI error body of the given type.
func checkLimited(t *testing.T, r result, kind string, rpm, tpm int) {
	t.Helper()
	if r.status != 429 {
		t.Fatalf("status = %d; want 429: %s", r.status, r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("retry-after")); err != nil || s < 1 || s > 60 {
		t.Errorf("retry-after = %q; want 1..60 seconds", r.header.Get("retry-after"))
	}
	if ms, err := strconv.Atoi(r.header.Get("retry-after-ms")); err != nil || ms < 1 || ms > 60000 {
		t.Errorf("retry-after-ms = %q; want 1..60000", r.header.Get("retry-after-ms"))
	}
	checkRLHeaders(t, r.header, rpm, tpm)
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("429 body is not JSON: %v: %s", err, r.body)
	}
	if e.Error.Type != kind || e.Error.Code == nil || *e.Error.Code != "rate_limit_exceeded" || e.Error.Message == "" {
		t.Errorf("429 body = %s; want type %q, code rate_limit_exceeded and a message", r.body, kind)
	}
}

var backends = []string{"memory", "redis"}

func TestRateLimitHeaders(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			g := startRL(t, backend)
			tests := []struct {
				name, key, body string
				fault           *loadtest.Fault // on both mocks
				status          int
				rpm, tpm        int
			}{
				{"limited", "both", chat("support-bot", ""), nil, 200, 1000, 1000000},
				{"limited stream", "both", chat("support-bot", `"stream":true`), nil, 200, 1000, 1000000},
				{"limited upstream 400", "both", chat("support-bot", ""), &loadtest.Fault{Status: 400}, 400, 1000, 1000000},
				{"limited upstreams down", "both", chat("support-bot", ""), &loadtest.Fault{Status: 503}, 503, 1000, 1000000}, // the last upstream's status (issue 14.3)
				{"rpm only", "open", chat("support-bot", ""), nil, 200, 40, 0},
				{"tpm only", "tpm-plain", chat("support-bot", ""), nil, 200, 0, 5000},
				{"unlimited", "free", chat("support-bot", ""), nil, 200, 0, 0},
				{"unlimited stream", "free", chat("support-bot", `"stream":true`), nil, 200, 0, 0},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if tt.fault != nil {
						g.m1.SetFault("*", *tt.fault)
						g.m2.SetFault("*", *tt.fault)
						defer g.m1.ClearFaults()
						defer g.m2.ClearFaults()
					}
					r, _ := g.post(t, tt.key, tt.body)
					if r.status != tt.status {
						t.Fatalf("status = %d; want %d: %s", r.status, tt.status, r.body)
					}
					checkRLHeaders(t, r.header, tt.rpm, tt.tpm)
				})
			}
			// Remaining counts down request by request.
			freshMinute(t)
			r1, _ := g.post(t, "open", chat("support-bot", ""))
			r2, _ := g.post(t, "open", chat("support-bot", ""))
			a, _ := strconv.Atoi(r1.header.Get("x-ratelimit-remaining-requests"))
			b, _ := strconv.Atoi(r2.header.Get("x-ratelimit-remaining-requests"))
			if b != a-1 {
				t.Errorf("x-ratelimit-remaining-requests went %d → %d; want one less", a, b)
			}
		})
	}
}

func TestRateLimitRPM(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			g := startRL(t, backend)
			freshMinute(t)
			for i := range 2 {
				r, _ := g.post(t, "rpm", chat("support-bot", ""))
				if r.status != 200 {
					t.Fatalf("request %d: status %d; want 200: %s", i, r.status, r.body)
				}
				if got, want := r.header.Get("x-ratelimit-remaining-requests"), strconv.Itoa(1-i); got != want {
					t.Errorf("request %d: remaining-requests = %q; want %q", i, got, want)
				}
			}
			before := g.m1.Requests() + g.m2.Requests()
			r, _ := g.post(t, "rpm", chat("support-bot", ""))
			checkLimited(t, r, "requests", 2, 0)
			if got := r.header.Get("x-ratelimit-remaining-requests"); got != "0" {
				t.Errorf("remaining-requests on the 429 = %q; want 0", got)
			}
			if n := g.m1.Requests() + g.m2.Requests() - before; n != 0 {
				t.Errorf("upstreams saw %d requests for a limited request; want 0", n)
			}
			// A streamed request is limited the same way, before any SSE.
			rs, _ := g.post(t, "rpm", chat("support-bot", `"stream":true`))
			checkLimited(t, rs, "requests", 2, 0)
			rec := g.recordByID(t, r.header.Get("x-request-id"))
			if rec.Outcome != capture.OutcomeRateLimited || rec.Status != 429 || rec.Key != "rpm" || len(rec.Attempts) != 0 {
				t.Errorf("record outcome %q status %d key %q attempts %d; want rate_limited 429 rpm 0",
					rec.Outcome, rec.Status, rec.Key, len(rec.Attempts))
			}
			if v, _ := g.metric(t, `cairn_ratelimit_limited_total{key="rpm",kind="requests"}`); v != 2 {
				t.Errorf("cairn_ratelimit_limited_total{key=rpm,kind=requests} = %v; want 2", v)
			}
			// Another key's budget is its own.
			if r, _ := g.post(t, "open", chat("support-bot", "")); r.status != 200 {
				t.Errorf("another key got %d; want 200", r.status)
			}
		})
	}
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(body []byte) (events []string, done bool) {
	for line := range strings.SplitSeq(string(body), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			if d == "[DONE]" {
				done = true
			} else {
				events = append(events, d)
			}
		}
	}
	return events, done
}

func TestRateLimitTPM(t *testing.T) {
	modes := []struct {
		key, extra string
		stream     bool
		usage      bool // client asked for usage
	}{
		{"tpm-plain", "", false, false},
		{"tpm-stream-usage", `"stream":true,"stream_options":{"include_usage":true}`, true, true},
		{"tpm-stream", `"stream":true`, true, false},
	}
	const tpm = 5000
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			g := startRL(t, backend)
			freshMinute(t)
			for _, m := range modes {
				t.Run(m.key, func(t *testing.T) {
					body := chat("support-bot", m.extra)
					send := func() result {
						t.Helper()
						r, _ := g.post(t, m.key, body)
						if m.stream && r.status == 200 {
							events, done := sseEvents(r.body)
							if !done {
								t.Errorf("stream without [DONE]")
							}
							sawUsage := false
							for _, ev := range events {
								if strings.Contains(ev, `"usage":{`) || strings.Contains(ev, `"choices":[]`) {
									sawUsage = true
								}
							}
							if sawUsage != m.usage {
								t.Errorf("client saw a usage chunk = %v; want %v", sawUsage, m.usage)
							}
						}
						return r
					}
					usageOf := func(r result) int {
						t.Helper()
						rec := g.recordByID(t, r.header.Get("x-request-id"))
						if rec.Usage.TotalTokens <= 0 {
							t.Fatalf("record %s has no usage", rec.GatewayRequestID)
						}
						return rec.Usage.TotalTokens
					}

					// 1. An ordinary reply is charged its actual usage.
					// The Redis limiter reports what is left after this
					// request's reservation (the key's mean usage; 1 before
					// any charge): the budget in flight is spoken for.
					r1 := send()
					want1 := tpm
					if backend == "redis" {
						want1 = tpm - 1
					}
					if r1.status != 200 || r1.header.Get("x-ratelimit-remaining-tokens") != strconv.Itoa(want1) {
						t.Fatalf("first request: status %d remaining-tokens %q; want 200 %d",
							r1.status, r1.header.Get("x-ratelimit-remaining-tokens"), want1)
					}
					u1 := usageOf(r1)
					g.waitCharged(t, m.key, u1)

					// 2. Charging is idempotent per gateway request ID: charging
					// r1 again changes nothing.
					id1 := r1.header.Get("x-request-id")
					lim := ratelimit.Limits{TPM: tpm}
					g.chargeUsage(charge{key: m.key, limits: lim, reqID: id1, tokens: u1})
					g.chargeUsage(charge{key: m.key, limits: lim, reqID: id1, tokens: u1})
					g.waitChargesSent(t)
					g.waitCharged(t, m.key, u1)

					// 3. A reply that overshoots the budget succeeds...
					g.m1.SetFault("upstream-model", loadtest.Fault{Tokens: 3 * tpm})
					defer g.m1.ClearFaults()
					r2 := send()
					if r2.status != 200 {
						t.Fatalf("overshooting request: status %d; want 200: %s", r2.status, r2.body)
					}
					want2 := tpm - u1
					if backend == "redis" {
						want2 = tpm - 2*u1 // r2 reserved the mean, u1
					}
					if got, want := r2.header.Get("x-ratelimit-remaining-tokens"), strconv.Itoa(want2); got != want {
						t.Errorf("remaining-tokens after one reply = %q; want %s (charged once, actual usage)", got, want)
					}
					u2 := usageOf(r2)
					if u2 <= 3*tpm {
						t.Errorf("overshooting usage = %d; want > %d", u2, 3*tpm)
					}
					g.waitCharged(t, m.key, u1+u2)

					// 4. ...and the next request is refused for tokens.
					before := g.m1.Requests()
					r3 := send()
					checkLimited(t, r3, "tokens", 0, tpm)
					if got := r3.header.Get("x-ratelimit-remaining-tokens"); got != "0" {
						t.Errorf("remaining-tokens on the 429 = %q; want 0", got)
					}
					if n := g.m1.Requests() - before; n != 0 {
						t.Errorf("upstream saw %d requests past the TPM; want 0", n)
					}
				})
			}
			if v, _ := g.metric(t, `cairn_ratelimit_limited_total{key="tpm-stream",kind="tokens"}`); v != 1 {
				t.Errorf("cairn_ratelimit_limited_total{key=tpm-stream,kind=tokens} = %v; want 1", v)
			}
		})
	}
}

// TestRateLimitUpstream429: a provider's 429 is the route's problem (it
// falls back), recorded as such, and never spends the key's budget.
func TestRateLimitUpstream429(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			g := startRL(t, backend)
			freshMinute(t)
			g.m1.SetFault("*", loadtest.Fault{Status: 429})
			r, _ := g.post(t, "up429", chat("support-bot", ""))
			if r.status != 200 || r.header.Get("x-cairn-target") != "backup/backup-model" {
				t.Fatalf("status %d target %q; want 200 from the fallback: %s", r.status, r.header.Get("x-cairn-target"), r.body)
			}
			if got := r.header.Get("x-ratelimit-remaining-requests"); got != "4" {
				t.Errorf("remaining-requests = %q; want 4: the client request counts once", got)
			}
			rec := g.recordByID(t, r.header.Get("x-request-id"))
			if len(rec.Attempts) != 2 || rec.Attempts[0].Status != 429 || rec.Attempts[0].Provider != "primary" ||
				rec.Attempts[1].Status != 200 || rec.Outcome != capture.OutcomeOK {
				t.Errorf("record outcome %q attempts %+v; want ok after a primary 429", rec.Outcome, rec.Attempts)
			}

			// Every upstream rate limiting: the client gets the last
			// provider's 429 as the provider sent it (issue 14.3), told apart
			// from the key's own by x-cairn-target; the budget is untouched.
			g.m2.SetFault("*", loadtest.Fault{Status: 429})
			r, _ = g.post(t, "up429", chat("support-bot", ""))
			if r.status != 429 || r.errorCode() != "rate_limit_exceeded" || r.header.Get("x-cairn-target") != "backup/backup-model" {
				t.Fatalf("status %d code %q target %q; want the backup's 429: %s", r.status, r.errorCode(), r.header.Get("x-cairn-target"), r.body)
			}
			if got := r.header.Get("x-ratelimit-remaining-requests"); got != "3" {
				t.Errorf("remaining-requests = %q; want 3", got)
			}
			rec = g.recordByID(t, r.header.Get("x-request-id"))
			if rec.Outcome != capture.OutcomeUpstream429 || len(rec.Attempts) != 2 {
				t.Errorf("record outcome %q attempts %d; want upstream_429 with 2 attempts", rec.Outcome, len(rec.Attempts))
			}
			for _, kind := range []string{"requests", "tokens"} {
				if v, _ := g.metric(t, `cairn_ratelimit_limited_total{key="up429",kind="`+kind+`"}`); v != 0 {
					t.Errorf("key up429 limited %s = %v; want 0", kind, v)
				}
			}
			g.m1.ClearFaults()
			g.m2.ClearFaults()
			if r, _ := g.post(t, "up429", chat("support-bot", "")); r.header.Get("x-ratelimit-remaining-requests") != "2" {
				t.Errorf("remaining-requests = %q; want 2", r.header.Get("x-ratelimit-remaining-requests"))
			}
		})
	}
}

// checkDegraded checks /metrics while Redis fails.
func (g *rlGateway) checkDegraded(t *testing.T, want bool) {
	t.Helper()
	deg, ok := g.metric(t, "cairn_ratelimit_degraded")
	errs, _ := g.metric(t, "cairn_ratelimit_redis_errors_total")
	if !ok || (deg == 1) != want {
		t.Errorf("cairn_ratelimit_degraded = %v (present %v); want degraded %v", deg, ok, want)
	}
	if want && errs < 1 {
		t.Errorf("cairn_ratelimit_redis_errors_total = %v; want > 0", errs)
	}
}

// waitShared sends requests for key until the limiter is back on Redis
// (cairn_ratelimit_degraded 0 and a 200), then checks that Redis counts
// the key's window again (its leased units). It returns the 200s it got.
func (g *rlGateway) waitShared(t *testing.T, key string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	ok := 0
	for {
		r, _ := g.post(t, key, chat("support-bot", ""))
		if r.status == 200 {
			ok++
		}
		if deg, _ := g.metric(t, "cairn_ratelimit_degraded"); r.status == 200 && deg == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shared limiting did not resume within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A request admitted from the outage share, just as Redis came back,
	// reaches Redis when the replica next syncs, not before its 200.
	n := g.redisRequests(t, key)
	for end := time.Now().Add(3 * time.Second); n < 1 && time.Now().Before(end); n = g.redisRequests(t, key) {
		time.Sleep(20 * time.Millisecond)
	}
	if n < 1 {
		t.Errorf("redis counts %d requests for %s after a 200; want its lease counted", n, key)
	}
	return ok
}

// tripBreaker sends requests on keys this replica holds no lease for
// (each waits for a lease call) until the limiter says Redis is
// unreachable (three failed calls in a row). Until then a request that
// got no lease within the deadline is refused, not admitted on a guess.
func (g *rlGateway) tripBreaker(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	cold := []string{"rpm", "up429", "tpm-stream", "tpm-stream-usage"}
	for i := 0; ; i++ {
		if deg, _ := g.metric(t, "cairn_ratelimit_degraded"); deg == 1 {
			return
		}
		r, el := g.post(t, cold[i%len(cold)], chat("support-bot", ""))
		if r.status != 429 && r.status != 200 {
			t.Errorf("request with Redis failing: status %d: %s", r.status, r.body)
		}
		if el > rlRedisTimeout+rlSlack {
			t.Errorf("request with Redis failing took %v; want ≤ %v", el, rlRedisTimeout+rlSlack)
		}
		if time.Now().After(deadline) {
			t.Fatalf("breaker did not open within 5s of Redis failing")
		}
	}
}

// failingRedisPhase runs, with Redis unreachable (breaker open), 60
// requests on the fail-open key "open" (rpm 40), 8 at a time, and one on
// the fail-closed key. The replica spends what it holds and then its
// share of what Redis had not granted (one live replica: all of it), so
// the window's total is exactly 40 with admittedBefore already spent
// (issue 15: not a fresh share on top). None may spend longer in the
// gateway than the limiter's deadline plus slack.
//
// counted is what Redis had granted for "open" before it failed: the
// replica may lose the units it held (a return sent as Redis failed is
// not undone: it may have landed), never exceed the limit.
//
// It returns how many of open's requests were admitted from the outage
// share (beyond the slice the replica held).
func (g *rlGateway) failingRedisPhase(t *testing.T, admittedBefore, counted int) int {
	t.Helper()
	g.tripBreaker(t)
	shareBefore, _ := g.metric(t, "cairn_ratelimit_outage_admitted_total")
	const n = 60
	results := make([]result, n+1)
	took := make([]time.Duration, n+1)
	for i := 0; i < n; i += 8 {
		var wg sync.WaitGroup
		for j := i; j < min(i+8, n); j++ {
			wg.Go(func() { results[j], took[j] = g.post(t, "open", chat("support-bot", "")) })
		}
		wg.Wait()
	}
	shareAfter, _ := g.metric(t, "cairn_ratelimit_outage_admitted_total")
	results[n], took[n] = g.post(t, "closed", chat("support-bot", ""))

	statuses := map[int]int{}
	for _, r := range results[:n] {
		statuses[r.status]++
		if r.status == 429 {
			checkLimited(t, r, "requests", 40, 0)
		}
	}
	if ok := statuses[200]; ok < 40-counted || ok > 40-admittedBefore || ok+statuses[429] != n {
		t.Errorf("fail-open key (rpm 40) with Redis down: %d admitted before, Redis had counted %d, then statuses %v; want %d..%d admitted: what remained, never more",
			admittedBefore, counted, statuses, 40-counted, 40-admittedBefore)
	}
	checkLimited(t, results[n], "requests", 100, 0)
	if !strings.Contains(string(results[n].body), "fail_closed") {
		t.Errorf("fail-closed 429 does not say why: %s", results[n].body)
	}
	var handler, client time.Duration
	for i, r := range results {
		handler = max(handler, time.Duration(g.recordByID(t, r.header.Get("x-request-id")).LatencyMS*float64(time.Millisecond)))
		client = max(client, took[i])
	}
	t.Logf("slowest request with the breaker open: %v in the gateway, %v at the client", handler, client)
	if handler > rlSlack {
		t.Errorf("slowest request with the breaker open spent %v in the gateway; want ≤ %v: it waits on nothing", handler, rlSlack)
	}
	g.checkDegraded(t, true)
	return int(shareAfter - shareBefore)
}

func TestRateLimitRedisPaused(t *testing.T) {
	g := startRL(t, "redis")
	freshMinute(t)
	before := g.waitShared(t, "open")
	g.checkDegraded(t, false)
	time.Sleep(100 * time.Millisecond) // let a refill in flight land
	counted := g.redisRequests(t, "open")

	g.srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			g.srv.Resume()
		}
	}()
	g.failingRedisPhase(t, before, counted)
	// Keys without limits never wait for Redis.
	if r, el := g.post(t, "free", chat("support-bot", "")); r.status != 200 || el > rlSlack {
		t.Errorf("unlimited key with Redis hung: status %d in %v", r.status, el)
	}

	g.srv.Resume()
	resumed = true
	g.waitShared(t, "both")
	g.checkDegraded(t, false)
}

func TestRateLimitRedisKilled(t *testing.T) {
	g := startRL(t, "redis")
	freshMinute(t)
	before := g.waitShared(t, "open")
	time.Sleep(100 * time.Millisecond) // let a refill in flight land
	counted := g.redisRequests(t, "open")
	g.srv.Kill()
	out := g.failingRedisPhase(t, before, counted)
	// More failed dials than the client's pool size (64) trip go-redis's
	// dial breaker too; requests stay fast.
	for range 80 {
		if r, el := g.post(t, "closed", chat("support-bot", "")); r.status != 429 || el > rlRedisTimeout+rlSlack {
			t.Fatalf("fail-closed key with Redis down: status %d in %v", r.status, el)
		}
	}

	g.srv.Restart() // a new, empty Redis on the same address
	start := time.Now()
	g.waitShared(t, "both")
	t.Logf("shared limiting resumed %v after Redis restarted", time.Since(start).Round(time.Millisecond))
	g.checkDegraded(t, false)
	// The requests admitted from the outage share reach the new Redis as
	// debt, so the window stays spent (units of the old Redis's leases
	// died with it).
	deadline := time.Now().Add(3 * time.Second)
	for g.redisRequests(t, "open") < out && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := g.redisRequests(t, "open"); out < 1 || n < out {
		t.Errorf("new Redis counts %d requests for open; want at least the %v admitted from the outage share", n, out)
	}
	// Token charges reach the new Redis too.
	r, _ := g.post(t, "tpm-plain", chat("support-bot", ""))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	g.waitCharged(t, "tpm-plain", g.recordByID(t, r.header.Get("x-request-id")).Usage.TotalTokens)
}

func TestAppendReset(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{400 * time.Microsecond, "0s"},
		{time.Millisecond, "1ms"},
		{12*time.Millisecond + 400*time.Microsecond, "12ms"},
		{999 * time.Millisecond, "999ms"},
		{999*time.Millisecond + 600*time.Microsecond, "1s"},
		{time.Second, "1s"},
		{1499 * time.Millisecond, "1s"},
		{59*time.Second + 400*time.Millisecond, "59s"},
		{59*time.Second + 600*time.Millisecond, "1m0s"},
		{time.Minute, "1m0s"},
		{6*time.Minute + 5*time.Second, "6m5s"},
		{time.Hour + 2*time.Minute + 3*time.Second, "1h2m3s"},
	}
	for _, tt := range tests {
		got := string(appendReset(nil, tt.in))
		if got != tt.want {
			t.Errorf("appendReset(%v) = %q; want %q", tt.in, got, tt.want)
		}
		// The same as Go's own duration text, which OpenAI's headers use.
		ref := tt.in.Round(time.Second)
		if tt.in < time.Second {
			ref = max(tt.in.Round(time.Millisecond), 0)
		}
		if ref.String() != got {
			t.Errorf("appendReset(%v) = %q; time.Duration says %q", tt.in, got, ref.String())
		}
	}
}
