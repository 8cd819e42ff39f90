package proxy

import (
	"fmt"
	"testing"

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
	benchmarkRequests(b, target, "bench-key", "support-bot")
}
