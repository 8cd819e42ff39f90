package proxy

// Issue 12.11, streams that broke: a stream that ends without the
// provider's usage event (the client went away, the upstream broke, a
// buffered stream broke and fell back) cost the provider's tokens all the
// same, but the key was charged nothing: a client that closed each stream
// just before its end spent no TPM at all.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/routing/ratelimit"
)

const streamChargeConfig = `
data_dir: {{DATA}}
providers:
  - { name: up, base_url: "http://%s/v1", timeout: 2s }
  - { name: good, base_url: "http://%s/v1", timeout: 2s }
keys:
  - { name: k, key_env: K_KEY, tpm: 100000 }
routes:
  - name: relayed
    targets: [ { provider: up, model: m } ]
  - name: buffered
    targets: [ { provider: up, model: m } ]
    fallbacks: [ { provider: good, model: m } ]
    contract: { mode: enforce, buffer_streams: true }
`

// chunk40 is a content delta of 40 bytes.
const chunk40 = "data: {\"id\":\"s\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"0123456789012345678901234567890123456789\"},\"finish_reason\":null}]}\n\n"

func TestBrokenStreamsAreCharged(t *testing.T) {
	// up streams by the request's "user": "slow" sends 20 chunks 30 ms
	// apart and then its usage; "broken" sends 3 chunks and ends the body
	// without [DONE] or usage.
	up := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		user := gjson.GetBytes(ctx.PostBody(), "user").String()
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			n := 20
			if user == "broken" {
				n = 3
			}
			for i := range n {
				w.WriteString(chunk40)
				if w.Flush() != nil {
					return
				}
				if user == "slow" && i < n-1 {
					time.Sleep(30 * time.Millisecond)
				}
			}
			if user == "broken" {
				return
			}
			w.WriteString("data: {\"id\":\"s\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
				"data: {\"id\":\"s\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":200,\"total_tokens\":250}}\n\ndata: [DONE]\n\n")
			w.Flush()
		})
	})
	good := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyString("data: {\"id\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"{}\"},\"finish_reason\":\"stop\"}]}\n\n" +
			"data: {\"id\":\"g\",\"choices\":[],\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":4,\"total_tokens\":10}}\n\ndata: [DONE]\n\n")
	})
	g := startGateway(t, fmt.Sprintf(streamChargeConfig, up, good), map[string]string{"K_KEY": "gw-k"})

	charged, requests := 0, 0
	check := func(what string, minWant int) {
		t.Helper()
		// A request is charged in finish, before its record is handed to
		// capture; a client that went away is noticed by the relay after
		// the client's side returned.
		requests++
		g.records(t, requests)
		waitNoCharges(t, g.Gateway)
		// The memory limiter is charged inline: one read is enough.
		lim := ratelimit.Limits{TPM: 100000}
		d := g.limiter.Check(context.Background(), "k", lim, "")
		g.limiter.Charge(context.Background(), "k", lim, "", 0, d.Reservation)
		got := 100000 - d.RemainingTokens - d.Reservation.Tokens
		if got < charged+minWant {
			t.Errorf("after %s: key charged %d tokens in all; want at least %d", what, got, charged+minWant)
		}
		charged = got
	}

	// The client reads the first chunk and goes away.
	body := chat("relayed", `"user":"slow","stream":true`)
	req, _ := http.NewRequest("POST", g.api+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer gw-k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(chunk40))
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	// At least the request body and one chunk's content, 4 bytes a token.
	check("a client that went away", (len(body)+40)/4)

	// The upstream breaks mid-stream, relayed to the client.
	body = chat("relayed", `"user":"broken","stream":true`)
	r := do(t, "POST", g.api+"/v1/chat/completions", "gw-k", body)
	if r.status != 200 || !strings.Contains(string(r.body), `"error"`) {
		t.Fatalf("broken relayed stream: %d %s; want 200 with a terminal error event", r.status, r.body)
	}
	check("a relayed stream that broke", (len(body)+3*40)/4)

	// A buffered stream breaks and the fallback answers: the broken
	// attempt's estimate plus the fallback's reported 10.
	body = chat("buffered", `"user":"broken","stream":true,"response_format":{"type":"json_object"}`)
	r = do(t, "POST", g.api+"/v1/chat/completions", "gw-k", body)
	if r.status != 200 {
		t.Fatalf("buffered: %d %s", r.status, r.body)
	}
	check("a buffered stream that broke", (len(body)+3*40)/4+10)

	// A stream that completes is charged what the provider reported, no
	// estimate on top.
	before := charged
	r = do(t, "POST", g.api+"/v1/chat/completions", "gw-k", chat("relayed", `"user":"full","stream":true`))
	if r.status != 200 {
		t.Fatalf("full stream: %d %s", r.status, r.body)
	}
	check("a complete stream", 250)
	if charged != before+250 {
		t.Errorf("a complete stream charged %d; want the reported 250", charged-before)
	}

	var estimated int
	for _, rec := range g.records(t, 4) {
		for _, a := range rec.Attempts {
			estimated += a.EstimatedTokens
		}
		if rec.Outcome == capture.OutcomeOK && rec.Route == "relayed" && rec.Attempts[0].EstimatedTokens != 0 {
			t.Errorf("record %s: a complete stream has an estimate %d", rec.GatewayRequestID, rec.Attempts[0].EstimatedTokens)
		}
	}
	if estimated == 0 {
		t.Errorf("no record shows the estimated tokens it charged")
	}
}
