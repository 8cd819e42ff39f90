package main

// Issue 3 end to end: two real `cairn serve` processes sharing one real
// redis-server enforce one per-key budget.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/internal/redistest"
)

// limitsConfig is one replica. redis_timeout is generous on purpose: this
// test is about exactness across replicas, and a check that missed a tight
// deadline on a loaded 2-core box would be decided locally.
const limitsConfig = `
listen: %s
admin_listen: %s
data_dir: %s
redis_url: %s
ratelimit: { redis_timeout: 1s, replicas: 2 }
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 5s }
keys:
  - { name: app, key_env: E2E_APP_KEY, rpm: 20 }
routes:
  - name: support-bot
    targets:
      - { provider: mock, model: gpt-4o-mini }
`

// replica is one running cairn serve.
type replica struct{ api, admin string }

func startReplica(t *testing.T, redisURL, mock string) replica {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "cairn.yaml")
	cfg := fmt.Sprintf(limitsConfig, anyPort, anyPort, filepath.Join(dir, "data"), redisURL, mock)
	g := serveConfig(t, path, cfg, "E2E_APP_KEY=gw-e2e-app")
	return replica{api: g.api, admin: g.admin}
}

// metric returns the value of series on the replica's /metrics (0 when
// absent).
func (r replica) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(r.admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func TestE2ELimitsTwoReplicas(t *testing.T) {
	srv := redistest.Start(t)
	_, mock := startMockFlags(t)
	replicas := []replica{startReplica(t, srv.URL(), mock), startReplica(t, srv.URL(), mock)}

	// Do not straddle two one-minute windows (Redis TIME is this host's clock).
	if left := time.Minute - time.Duration(time.Now().UnixNano()%int64(time.Minute)); left < 10*time.Second {
		time.Sleep(left + 50*time.Millisecond)
	}

	const n, rpm = 50, 20
	type outcome struct {
		status      int
		typ, code   string
		retryAfter  string
		limitHeader string
		err         error
	}
	outcomes := make([]outcome, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		rep := replicas[i%2]
		c := openai.NewClient(option.WithBaseURL(rep.api+"/v1"), option.WithAPIKey("gw-e2e-app"), option.WithMaxRetries(0))
		wg.Go(func() {
			<-start
			var raw *http.Response
			_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model:    "support-bot",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(fmt.Sprintf("request %d", i))},
			}, option.WithResponseInto(&raw))
			o := &outcomes[i]
			var apiErr *openai.Error
			switch {
			case err == nil:
				o.status = raw.StatusCode
				o.limitHeader = raw.Header.Get("x-ratelimit-limit-requests")
			case errors.As(err, &apiErr):
				o.status, o.typ, o.code = apiErr.StatusCode, apiErr.Type, apiErr.Code
				o.retryAfter = apiErr.Response.Header.Get("retry-after")
				o.limitHeader = apiErr.Response.Header.Get("x-ratelimit-limit-requests")
			default:
				o.err = err
			}
		})
	}
	close(start)
	wg.Wait()

	statuses := map[int]int{}
	for i, o := range outcomes {
		if o.err != nil {
			t.Fatalf("request %d: %v", i, o.err)
		}
		statuses[o.status]++
		if o.limitHeader != strconv.Itoa(rpm) {
			t.Errorf("request %d: x-ratelimit-limit-requests = %q; want %d", i, o.limitHeader, rpm)
		}
		if o.status == 429 && (o.typ != "requests" || o.code != "rate_limit_exceeded" || o.retryAfter == "") {
			t.Errorf("request %d: 429 type %q code %q retry-after %q; want requests rate_limit_exceeded and a retry-after",
				i, o.typ, o.code, o.retryAfter)
		}
	}
	var errs, limited float64
	for _, r := range replicas {
		errs += r.metric(t, "cairn_ratelimit_redis_errors_total")
		limited += r.metric(t, `cairn_ratelimit_limited_total{key="app",kind="requests"}`)
	}
	if errs != 0 {
		t.Fatalf("redis errors on the replicas: %v; the counts below were partly decided locally", errs)
	}
	if statuses[200] != rpm || statuses[429] != n-rpm {
		t.Errorf("%d concurrent requests over two replicas against rpm %d: statuses %v; want exactly %d×200 and %d×429",
			n, rpm, statuses, rpm, n-rpm)
	}
	if limited != n-rpm {
		t.Errorf("cairn_ratelimit_limited_total summed over replicas = %v; want %d", limited, n-rpm)
	}
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	if got, err := rc.HGet(context.Background(), "cairn:rl:{app}", "r").Int(); err != nil || got != rpm {
		t.Errorf("redis request count = %d (%v); want %d", got, err, rpm)
	}
}
