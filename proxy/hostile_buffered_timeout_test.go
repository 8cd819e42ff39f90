package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/loadtest"
)

const bufferedTimeoutConfig = `
data_dir: {{DATA}}
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 2s, stream_idle_timeout: %s, stream_max_duration: %s }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: primary-model } ]
    contract: { mode: enforce, buffer_streams: true }
`

// TestHostileBufferedStreamTimeoutText: a buffered (enforce) stream cut by
// a deadline answers 504 naming the deadline it hit. Issue 12.15: a stream
// cut by stream_max_duration said it stalled; the relayed path was fixed,
// the buffered one still answered "upstream stream stalled".
func TestHostileBufferedStreamTimeoutText(t *testing.T) {
	for _, tt := range []struct {
		name, idle, maxDur string
		interval           time.Duration
		want, not          string
	}{
		{"max duration", "2s", "400ms", 50 * time.Millisecond, "stream_max_duration (400ms)", "stall"},
		{"idle", "200ms", "10s", 600 * time.Millisecond, "stream_idle_timeout (200ms)", "stream_max_duration"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := startMock(t, loadtest.MockOptions{Chunks: 40, ChunkInterval: tt.interval})
			tg := startGateway(t, fmt.Sprintf(bufferedTimeoutConfig, addr, tt.idle, tt.maxDur), nil)
			r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", `"stream":true,"response_format":{"type":"json_object"}`))
			msg, _, _ := apiErrorOf(t, r)
			if r.status != 504 || !strings.Contains(msg, tt.want) || strings.Contains(msg, tt.not) || !strings.Contains(msg, "upstream primary") {
				t.Errorf("%d %q; want 504 naming the upstream and %s", r.status, msg, tt.want)
			}
		})
	}
}
