package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/cairnhq/cairn/loadtest"
)

// BenchmarkProxyRateLimit measures what the per-key limiter adds to the
// non-streaming proxy path on loopback (issue 3): a key without limits (no
// limiter call), RPM+TPM in memory, and RPM+TPM through a real local
// redis-server (one EVALSHA per request, the token charge off the request
// path). Capture is off in all three so the difference is the limiter's.
// clients=1 is one request at a time, so ns/op is the request latency;
// clients=8 runs 8×GOMAXPROCS concurrent clients, so ns/op is the inverse
// of throughput.
//
//	go test ./proxy -run '^$' -bench ProxyRateLimit -benchtime 3s -count 5
func BenchmarkProxyRateLimit(b *testing.B) {
	for _, mode := range []string{"none", "memory", "redis"} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("limiter=%s/clients=%d", mode, par), func(b *testing.B) { benchmarkProxyRateLimit(b, mode, par) })
		}
	}
}

const benchRLConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 5s }
keys:
  - { name: bench, key_env: BENCH_KEY%s }
routes:
  - name: support-bot
    prompt: { version: v1 }
    targets:
      - { provider: mock, model: gpt-4o-mini }
detection: { window: 30s }
`

func benchmarkProxyRateLimit(b *testing.B, mode string, clients int) {
	m := loadtest.NewMock(loadtest.MockOptions{})
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	limits := ""
	if mode != "none" {
		limits = ", rpm: 1000000000, tpm: 1000000000000"
	}
	cfg := fmt.Sprintf(benchRLConfig, addr, limits)
	if mode == "redis" {
		srv := redistest.Start(b)
		// A generous deadline: this measures Redis's cost, not fallbacks.
		cfg += fmt.Sprintf("redis_url: %s\nratelimit: { redis_timeout: 1s }\n", srv.URL())
	}
	tg := startGateway(b, cfg, map[string]string{"BENCH_KEY": "bench-key"})
	tg.noCapture = true
	target := tg.api + "/v1/chat/completions"
	body := []byte(`{"model":"support-bot","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the refund policy for order 12345 in one sentence."}],"response_format":{"type":"json_object"},"temperature":0.2}`)
	c := &fasthttp.Client{MaxConnsPerHost: 512, ReadTimeout: 5 * time.Second}
	b.ReportAllocs()
	var check func(*fasthttp.Response) error
	if mode != "none" {
		check = func(resp *fasthttp.Response) error {
			if len(resp.Header.Peek("x-ratelimit-remaining-requests")) == 0 {
				return errors.New("no x-ratelimit headers: the limiter did not run")
			}
			return nil
		}
	}
	send := func(next func() bool) { sendChats(b, c, target, "Bearer bench-key", body, next, check) }
	b.ResetTimer()
	if clients == 1 {
		send(b.Loop)
	} else {
		b.SetParallelism(clients)
		b.RunParallel(func(pb *testing.PB) { send(pb.Next) })
	}
	b.StopTimer()
	var buf bytes.Buffer
	tg.limiter.WritePrometheus(&buf)
	if mode == "redis" && !strings.Contains(buf.String(), "\ncairn_ratelimit_redis_errors_total 0\n") {
		b.Errorf("Redis calls failed during the run; some checks were decided locally:\n%s", buf.String())
	}
	b.ReportMetric(float64(tg.chargeDropped.Load()), "charges-dropped")
}
