package proxy

import (
	"bufio"
	"fmt"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// TestStreamEndedWithoutDoneKeepsPool: an upstream stream whose HTTP body
// ends cleanly before [DONE] or a finish reason (found attacking issue
// 12.11's broken streams) gets its terminal error event, and the next
// requests on that upstream are served. The gateway closed the connection
// after fasthttp had put it back in its pool, so the next request took a
// closed connection and got 502 "the upstream connection closed".
func TestStreamEndedWithoutDoneKeepsPool(t *testing.T) {
	up := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		user := gjson.GetBytes(ctx.PostBody(), "user").String()
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			if user != "empty" {
				for range 3 {
					w.WriteString(poolChunk)
					w.Flush()
				}
			}
			if user == "full" {
				w.WriteString("data: [DONE]\n\n")
			}
		})
	})
	g := startGateway(t, fmt.Sprintf(poolConfig, up), map[string]string{"K_KEY": "gw-k"})
	for i, u := range []string{"broken", "full", "broken", "broken", "full", "empty", "full", "empty", "empty", "full"} {
		r := do(t, "POST", g.api+"/v1/chat/completions", "gw-k", chat("relayed", `"user":"`+u+`","stream":true`))
		switch {
		case u == "empty":
			// Nothing reached the client: a 502 of its own, not a pool
			// casualty of the request before.
			if r.status != 502 || gjson.GetBytes(r.body, "error.message").String() == "upstream up failed: the upstream connection closed" {
				t.Errorf("request %d (%s): %d %s; want 502 for the empty stream itself", i, u, r.status, r.body)
			}
		case r.status != 200:
			t.Errorf("request %d (%s): %d %s; want 200", i, u, r.status, r.body)
		}
	}
}

const poolConfig = `
data_dir: {{DATA}}
providers:
  - { name: up, base_url: "http://%s/v1", timeout: 2s }
keys:
  - { name: k, key_env: K_KEY }
routes:
  - { name: relayed, targets: [ { provider: up, model: m } ] }
`

// poolChunk is a content delta of 40 bytes.
const poolChunk = "data: {\"id\":\"s\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"0123456789012345678901234567890123456789\"},\"finish_reason\":null}]}\n\n"
