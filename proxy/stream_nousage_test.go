package proxy

import (
	"bufio"
	"context"
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/routing/ratelimit"
)

// TestStreamDoneWithoutUsageIsCharged: a provider that ends a stream with
// [DONE] but ignores stream_options.include_usage (some OpenAI-compatible
// servers do) billed its tokens all the same, but the key was charged 0.
// It is now charged the estimate, once, and the record shows it.
func TestStreamDoneWithoutUsageIsCharged(t *testing.T) {
	up := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for range 20 {
				w.WriteString(chunk40)
			}
			w.WriteString("data: {\"id\":\"s\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
			w.Flush()
		})
	})
	g := startGateway(t, fmt.Sprintf(streamChargeConfig, up, up), map[string]string{"K_KEY": "gw-k"})

	body := chat("relayed", `"stream":true`)
	r := do(t, "POST", g.api+"/v1/chat/completions", "gw-k", body)
	if r.status != 200 {
		t.Fatalf("stream: %d %s", r.status, r.body)
	}
	recs := g.records(t, 1)
	waitNoCharges(t, g.Gateway)
	lim := ratelimit.Limits{TPM: 100000}
	d := g.limiter.Check(context.Background(), "k", lim, "")
	g.limiter.Charge(context.Background(), "k", lim, "", 0, d.Reservation)
	got := 100000 - d.RemainingTokens - d.Reservation.Tokens
	want := (len(body) + 20*40) / 4
	if got < want {
		t.Errorf("key charged %d tokens for a stream without usage; want the estimate, at least %d", got, want)
	}
	est := recs[0].Attempts[0].EstimatedTokens
	if est < want || got > est+1 {
		t.Errorf("record's estimated_tokens %d, key charged %d; want one estimate of at least %d, charged once", est, got, want)
	}
}
