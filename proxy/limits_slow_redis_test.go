package proxy

// Issue 15: fail_closed keys refuse only when Redis is unreachable, never
// because Redis was slow while healthy.

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/cairnhq/cairn/loadtest"
)

const slowRedisConfig = `
data_dir: {{DATA}}
redis_url: %s
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 5s }
keys:
  - { name: warm, key_env: WARM_KEY, rpm: 1000, fail_closed: true }
  - { name: cold, key_env: COLD_KEY, rpm: 1000, fail_closed: true }
routes:
  - { name: r, targets: [ { provider: mock, model: m } ] }
`

// TestFailClosedSlowRedis: Redis frozen for 100ms (as DEBUG SLEEP 0.1
// would; the test server does not enable DEBUG), shorter than a request's
// lease wait (redis_timeout, default 250ms) and far from the breaker's
// three failed 1s calls: a fail_closed key with a slice and one without
// are served throughout, nothing is refused, the breaker stays closed.
// The old limiter refused every check that missed its 25ms call deadline.
func TestFailClosedSlowRedis(t *testing.T) {
	srv := redistest.Start(t)
	_, mock := startMock(t, loadtest.MockOptions{})
	g := &rlGateway{testGateway: startGateway(t, fmt.Sprintf(slowRedisConfig, srv.URL(), mock),
		map[string]string{"WARM_KEY": "gw-warm", "COLD_KEY": "gw-cold"})}
	freshMinute(t)
	if r, _ := g.post(t, "warm", chat("r", "")); r.status != 200 {
		t.Fatalf("warm-up: status %d: %s", r.status, r.body)
	}

	srv.Pause()
	resume := time.AfterFunc(100*time.Millisecond, srv.Resume)
	defer resume.Stop()
	var mu sync.Mutex
	statuses := map[string]map[int]int{"warm": {}, "cold": {}}
	var wg sync.WaitGroup
	for i := range 21 {
		key := "warm"
		if i == 20 {
			key = "cold"
		}
		wg.Go(func() {
			r, _ := g.post(t, key, chat("r", ""))
			mu.Lock()
			statuses[key][r.status]++
			mu.Unlock()
			if r.status != 200 {
				t.Errorf("%s key with Redis frozen 100ms: status %d: %s", key, r.status, r.body)
			}
		})
	}
	wg.Wait()
	t.Logf("Redis frozen 100ms: warm %v, cold %v", statuses["warm"], statuses["cold"])
	if deg, _ := g.metric(t, "cairn_ratelimit_degraded"); deg != 0 {
		t.Errorf("cairn_ratelimit_degraded = %v; want 0: a slow Redis is not an unreachable one", deg)
	}
	if errs, _ := g.metric(t, "cairn_ratelimit_redis_errors_total"); errs != 0 {
		t.Errorf("cairn_ratelimit_redis_errors_total = %v; want 0", errs)
	}
}
