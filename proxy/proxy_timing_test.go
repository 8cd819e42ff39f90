package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/loadtest"
)

// BenchmarkProxyChat measures the whole non-streaming proxy path on
// loopback: client → gateway (auth, parse, route, rate limit, contract,
// capture) → mock provider → back. Compare capture=on with capture=off and
// the mock called directly:
//
//	go test ./proxy -run '^$' -bench ProxyChat -benchtime 3s -count 6 | tee new.txt
func BenchmarkProxyChat(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchmarkProxy(b, "direct") })
	b.Run("capture=on", func(b *testing.B) { benchmarkProxy(b, "on") })
	b.Run("capture=off", func(b *testing.B) { benchmarkProxy(b, "off") })
}

const benchConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 5s }
keys:
  - { name: bench, key_env: BENCH_KEY, rpm: 100000000, tpm: 1000000000 }
routes:
  - name: support-bot
    prompt: { version: v1 }
    targets:
      - { provider: mock, model: gpt-4o-mini }
detection: { window: 30s }
`

func benchmarkProxy(b *testing.B, mode string) {
	m := loadtest.NewMock(loadtest.MockOptions{})
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	target := "http://" + addr + "/v1/chat/completions"
	if mode != "direct" {
		tg := startGateway(b, fmt.Sprintf(benchConfig, addr), map[string]string{"BENCH_KEY": "bench-key"})
		tg.noCapture = mode == "off"
		target = tg.api + "/v1/chat/completions"
	}
	body := []byte(`{"model":"support-bot","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the refund policy for order 12345 in one sentence."}],"response_format":{"type":"json_object"},"temperature":0.2}`)
	c := &fasthttp.Client{MaxConnsPerHost: 512, ReadTimeout: 5 * time.Second}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.Reset()
			req.SetRequestURI(target)
			req.Header.SetMethod("POST")
			req.Header.Set("Authorization", "Bearer bench-key")
			req.Header.SetContentType("application/json")
			req.SetBodyRaw(body)
			if err := c.Do(req, resp); err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode() != 200 {
				b.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
				return
			}
		}
	})
}
