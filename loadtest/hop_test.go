package loadtest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

// startHopFor serves NewHop(upstream) on loopback and returns its address.
func startHopFor(t *testing.T, upstream string) string {
	t.Helper()
	h, err := NewHop(upstream)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHopServer(h)
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// TestHop: the bare hop relays a chat completion from the real mock as
// the mock sent it, drops hop-by-hop headers both ways and answers an
// OpenAI-shaped 502 when the upstream is down.
func TestHop(t *testing.T) {
	m := NewMock(MockOptions{})
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	var mu sync.Mutex
	var seen fasthttp.RequestHeader
	spy := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		ctx.Request.Header.CopyTo(&seen)
		mu.Unlock()
		ctx.Response.Header.Set("Keep-Alive", "timeout=5")
		ctx.Response.Header.Set("x-request-id", "spy-1")
		ctx.SetBodyString(`{"ok":true}`)
	}}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go spy.Serve(sln) //nolint:errcheck
	t.Cleanup(func() { _ = spy.Shutdown() })

	post := func(hop string, hdr ...string) *fasthttp.Response {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		req.SetRequestURI("http://" + hop + "/v1/chat/completions")
		req.Header.SetMethod("POST")
		req.Header.SetContentType("application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		req.SetBodyString(`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`)
		if err := fasthttp.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := post(startHopFor(t, "http://"+addr))
	if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), `"chat.completion"`) {
		t.Errorf("through the hop: %d %s; want 200 and a chat.completion", resp.StatusCode(), resp.Body())
	}
	if len(resp.Header.Peek("x-request-id")) == 0 {
		t.Errorf("the mock's x-request-id was not relayed")
	}
	fasthttp.ReleaseResponse(resp)

	resp = post(startHopFor(t, "http://"+sln.Addr().String()), "Proxy-Authorization", "Basic eA==", "Te", "trailers", "x-keep", "1")
	mu.Lock()
	if v := seen.Peek("Proxy-Authorization"); len(v) > 0 {
		t.Errorf("hop forwarded Proxy-Authorization %q", v)
	}
	if string(seen.Peek("x-keep")) != "1" {
		t.Errorf("hop dropped an end-to-end header")
	}
	mu.Unlock()
	if v := resp.Header.Peek("Keep-Alive"); len(v) > 0 {
		t.Errorf("hop relayed the upstream's Keep-Alive %q", v)
	}
	fasthttp.ReleaseResponse(resp)

	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	resp = post(startHopFor(t, "http://"+deadAddr))
	if resp.StatusCode() != 502 || !strings.Contains(string(resp.Body()), `"type":"server_error"`) {
		t.Errorf("upstream down: %d %s; want an OpenAI-shaped 502", resp.StatusCode(), resp.Body())
	}
	fasthttp.ReleaseResponse(resp)

	if _, err := NewHop("ftp://x"); err == nil {
		t.Errorf("NewHop(ftp://x) = nil error; want one")
	}
}
