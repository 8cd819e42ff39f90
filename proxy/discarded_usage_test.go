package proxy

// Issue 12.11: tokens spent by attempts whose answer was discarded (a 5xx
// with usage, an enforce-mode contract failure that fell back, a buffered
// stream that failed its contract) were never charged to the key.

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/cairnhq/cairn/routing/ratelimit"
)

// startFastUpstream serves h on a loopback port and returns its address.
func startFastUpstream(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

const discardedConfig = `
data_dir: {{DATA}}
providers:
  - { name: bad, base_url: "http://%s/v1", timeout: 2s }
  - { name: good, base_url: "http://%s/v1", timeout: 2s }
keys:
  - { name: k, key_env: K_KEY, tpm: 100000 }
routes:
  - name: r
    targets: [ { provider: bad, model: m } ]
    fallbacks: [ { provider: good, model: m } ]
    contract: { mode: enforce, buffer_streams: true }
`

func TestDiscardedAttemptsAreCharged(t *testing.T) {
	// bad answers per the request's "user": a 500 with usage, a 200 that
	// is not JSON (the contract asks for a JSON object), or such a stream.
	bad := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		user := gjson.GetBytes(ctx.PostBody(), "user").String()
		switch user {
		case "5xx":
			ctx.SetStatusCode(500)
			ctx.SetBodyString(`{"error":{"message":"overloaded","type":"server_error"},"usage":{"prompt_tokens":60,"completion_tokens":40,"total_tokens":100}}`)
		case "contract":
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"not json"},"finish_reason":"stop"}],"usage":{"prompt_tokens":60,"completion_tokens":40,"total_tokens":100}}`)
		case "stream":
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyString("data: {\"id\":\"s1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"not json\"},\"finish_reason\":null}]}\n\n" +
				"data: {\"id\":\"s1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
				"data: {\"id\":\"s1\",\"choices\":[],\"usage\":{\"prompt_tokens\":60,\"completion_tokens\":40,\"total_tokens\":100}}\n\n" +
				"data: [DONE]\n\n")
		}
	})
	good := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if gjson.GetBytes(ctx.PostBody(), "stream").Bool() {
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyString("data: {\"id\":\"g1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"{}\"},\"finish_reason\":\"stop\"}]}\n\n" +
				"data: {\"id\":\"g1\",\"choices\":[],\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":4,\"total_tokens\":10}}\n\n" +
				"data: [DONE]\n\n")
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"id":"g1","choices":[{"index":0,"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}`)
	})
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			cfg := fmt.Sprintf(discardedConfig, bad, good)
			var srv *redistest.Server
			if backend == "redis" {
				srv = redistest.Start(t)
				cfg += fmt.Sprintf("redis_url: %s\nratelimit: { redis_timeout: %s }\n", srv.URL(), rlRedisTimeout)
			}
			g := startGateway(t, cfg, map[string]string{"K_KEY": "gw-k"})
			charged := 0
			for _, tc := range []struct{ user, extra string }{
				{"5xx", ""},
				{"contract", `"response_format":{"type":"json_object"}`},
				{"stream", `"response_format":{"type":"json_object"},"stream":true`},
			} {
				body := chat("r", `"user":"`+tc.user+`"`)
				if tc.extra != "" {
					body = chat("r", `"user":"`+tc.user+`",`+tc.extra)
				}
				r := do(t, "POST", g.api+"/v1/chat/completions", "gw-k", body)
				if r.status != 200 {
					t.Fatalf("%s: status %d: %s", tc.user, r.status, r.body)
				}
				charged += 100 + 10
				waitNoCharges(t, g.Gateway)
				if got := tokensCharged(t, g, 100000, charged); got != charged {
					t.Errorf("after %s: key charged %d tokens; want %d (discarded 100 + answer 10 per request)", tc.user, got, charged)
				}
			}
			recs := g.records(t, 3)
			for _, rec := range recs {
				if len(rec.Attempts) != 2 || rec.Attempts[0].DiscardedTokens != 100 {
					t.Errorf("record %s attempts = %+v; want the first with discarded_tokens 100", rec.GatewayRequestID, rec.Attempts)
				}
			}
		})
	}
}

// tokensCharged reads what the key k has been charged in the current
// minute, from the limiter itself: the check of a request that then
// settles with no usage. The Redis limiter reports a charge once its debt
// reached Redis (in the background), so this polls up to 3s for want.
func tokensCharged(t *testing.T, g *testGateway, tpm, want int) int {
	t.Helper()
	lim := ratelimit.Limits{TPM: tpm}
	deadline := time.Now().Add(3 * time.Second)
	for {
		d := g.limiter.Check(context.Background(), "k", lim, "")
		g.limiter.Charge(context.Background(), "k", lim, "", 0, d.Reservation)
		got := tpm - d.RemainingTokens - d.Reservation.Tokens
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitNoCharges(t *testing.T, g *Gateway) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for g.chargesPending.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d charges still pending after 3s", g.chargesPending.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
