package proxy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/loadtest"
)

// The hot-path rig (issue 15) measures what the gateway itself costs per
// request: the upstream answers a fixed chat completion from a fasthttp
// handler that does not allocate, and the client is a fasthttp HostClient
// reusing its request and response, so the allocations and CPU left are
// the gateway's (or, for the reference, a bare fasthttp hop's).

// hotBody is a typical ~1 KB chat request asking for a JSON object.
var hotBody = []byte(`{"model":"support-bot","messages":[{"role":"system","content":"You are a support assistant for an online store. Answer in JSON with the fields answer and confidence. Be brief and precise; never invent order numbers."},{"role":"user","content":"Hello! I ordered a pair of running shoes last Tuesday and the tracking page has not changed since Thursday. Can you tell me whether the parcel is lost, and what my options are for a refund or a replacement? My e-mail is jane.doe@example.com."}],"response_format":{"type":"json_object"},"temperature":0.2,"max_tokens":256,"user":"user-17"}`)

// hotReply is the upstream's answer: content that passes hotSchema.
var hotReply = []byte(`{"id":"chatcmpl-hot","object":"chat.completion","created":1764000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"{\"answer\":\"Your parcel is delayed, not lost: carriers often pause tracking updates over weekends. If nothing changes by Friday you can choose a refund or a replacement.\",\"confidence\":0.82}","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":112,"completion_tokens":41,"total_tokens":153}}`)

const hotSchema = `{"type":"object","required":["answer","confidence"],"properties":{"answer":{"type":"string"},"confidence":{"type":"number","minimum":0,"maximum":1}}}`

const hotConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 5s }
keys:
  - { name: bench, key_env: BENCH_KEY, rpm: 100000000, tpm: 1000000000 }
routes:
  - name: support-bot
    prompt: { version: v1 }
%s
    targets:
      - { provider: mock, model: gpt-4o-mini }
capture: { body_sample_rate: 1 }
detection: { window: 30s }
`

// startHotUpstream serves reply (with a provider request ID header) on
// loopback and returns its address.
func startHotUpstream(tb testing.TB, reply []byte) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.SetContentType("application/json")
			ctx.Response.Header.Set("x-request-id", "req-upstream-1")
			ctx.Response.SetBodyRaw(reply)
		},
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		MaxRequestBodySize:    64 << 20,
	}
	go srv.Serve(ln) //nolint:errcheck
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// hotTarget starts what mode names in front of the upstream and returns
// the URL to post to and, for "cairn", the gateway:
//   - "hop": loadtest's bare fasthttp hop (the floor);
//   - "cairn": the gateway with capture on (every body sampled); requests
//     ask for response_format json_object, which is their contract;
//   - "cairn+schema": the same with a route JSON Schema contract too (what
//     `cairn loadtest overhead` runs).
func hotTarget(tb testing.TB, mode string) (string, *testGateway) {
	tb.Helper()
	return hotTargetReply(tb, mode, hotReply)
}

// hotTargetReply is hotTarget with the upstream answering reply.
func hotTargetReply(tb testing.TB, mode string, reply []byte) (string, *testGateway) {
	tb.Helper()
	up := startHotUpstream(tb, reply)
	switch mode {
	case "hop":
		h, err := loadtest.NewHop("http://" + up)
		if err != nil {
			tb.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		srv := loadtest.NewHopServer(h)
		go srv.Serve(ln) //nolint:errcheck
		tb.Cleanup(func() { _ = srv.Shutdown() })
		return "http://" + ln.Addr().String() + "/v1/chat/completions", nil
	case "cairn", "cairn+schema":
		contract := ""
		if mode == "cairn+schema" {
			schemaPath := filepath.Join(tb.TempDir(), "reply.schema.json")
			if err := os.WriteFile(schemaPath, []byte(hotSchema), 0o600); err != nil {
				tb.Fatal(err)
			}
			contract = fmt.Sprintf("    contract: { mode: observe, schema_file: %q }", schemaPath)
		}
		tg := startGateway(tb, fmt.Sprintf(hotConfig, up, contract), map[string]string{"BENCH_KEY": "bench-key"})
		return tg.api + "/v1/chat/completions", tg
	}
	tb.Fatalf("hotTarget: unknown mode %q", mode)
	return "", nil
}

// hotClient posts hotBody to url, reusing one request and response.
type hotClient struct {
	c    *fasthttp.Client
	req  *fasthttp.Request
	resp *fasthttp.Response
	url  string
}

func newHotClient(url string) *hotClient {
	return &hotClient{
		c:    &fasthttp.Client{MaxConnsPerHost: 512, ReadTimeout: 5 * time.Second, NoDefaultUserAgentHeader: true},
		req:  fasthttp.AcquireRequest(),
		resp: fasthttp.AcquireResponse(),
		url:  url,
	}
}

// post sends one request and checks that it succeeded (and, through
// Cairn, that the contract passed).
func (h *hotClient) post(body []byte) error {
	h.req.Reset()
	h.req.SetRequestURI(h.url)
	h.req.Header.SetMethod(fasthttp.MethodPost)
	h.req.Header.Set("Authorization", "Bearer bench-key")
	h.req.Header.SetContentType("application/json")
	h.req.Header.Set("User-Agent", "OpenAI/Python 1.54.0")
	h.req.SetBodyRaw(body)
	if err := h.c.Do(h.req, h.resp); err != nil {
		return err
	}
	if h.resp.StatusCode() != fasthttp.StatusOK {
		return fmt.Errorf("status %d: %s", h.resp.StatusCode(), h.resp.Body())
	}
	if v := h.resp.Header.Peek("x-cairn-contract"); len(v) > 0 && string(v) != "pass" {
		return fmt.Errorf("x-cairn-contract %q; want pass", v)
	}
	return nil
}

func (h *hotClient) release() {
	fasthttp.ReleaseRequest(h.req)
	fasthttp.ReleaseResponse(h.resp)
}
