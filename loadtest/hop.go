package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// The bare hop is the floor a fasthttp proxy can reach: it forwards every
// request to one upstream with the server's own request and response
// objects and does nothing else (no auth, parsing, routing, contract or
// capture). Cairn is built on the same server and client, so the ratio of
// Cairn to the hop is what Cairn's own work costs (issue 15).
const (
	hopMaxConns    = 4096
	hopReadBuffer  = 64 << 10
	hopWriteBuffer = 32 << 10
	hopTimeout     = 60 * time.Second
	hopMaxBody     = 64 << 20
)

// hopHopHeaders are the hop-by-hop headers a proxy must not forward
// (RFC 9110 §7.6.1).
var hopHopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// NewHop returns a fasthttp handler that forwards each request to upstream
// (a base URL such as "http://127.0.0.1:9000") with
// HostClient.DoTimeout(&ctx.Request, &ctx.Response, …), after deleting
// hop-by-hop headers, as the fasthttp README's proxy example does. The
// handler is safe for concurrent use; its client lives as long as it does.
func NewHop(upstream string) (fasthttp.RequestHandler, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("hop: upstream %q is not an http URL", upstream)
	}
	hc := &fasthttp.HostClient{
		Addr:                          u.Host,
		MaxConns:                      hopMaxConns,
		MaxIdleConnDuration:           30 * time.Second,
		ReadBufferSize:                hopReadBuffer,
		WriteBufferSize:               hopWriteBuffer,
		MaxResponseBodySize:           hopMaxBody,
		DisableHeaderNamesNormalizing: true,
		NoDefaultUserAgentHeader:      true,
	}
	return func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		for _, h := range hopHopHeaders {
			req.Header.Del(h)
		}
		req.SetHost(u.Host)
		if err := hc.DoTimeout(req, &ctx.Response, hopTimeout); err != nil {
			ctx.Response.Reset()
			ctx.SetStatusCode(fasthttp.StatusBadGateway)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"error":{"message":"hop: upstream failed","type":"server_error","param":null,"code":null}}`)
			return
		}
		for _, h := range hopHopHeaders {
			ctx.Response.Header.Del(h)
		}
	}, nil
}

// NewHopServer returns the fasthttp server the hop runs in, sized like
// Cairn's API server (request bodies up to 64 MiB).
func NewHopServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               h,
		Name:                  "hop",
		MaxRequestBodySize:    hopMaxBody,
		ReadBufferSize:        16 << 10,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		IdleTimeout:           60 * time.Second,
	}
}

// RunHop serves NewHop(upstream) on ln until stop is closed (the hidden
// `cairn loadtest-hop --listen ADDR --upstream URL` subcommand: the
// overhead scenario runs the hop as a child process, like Cairn and the
// stdlib proxy, so that all three are measured the same way). It closes ln.
func RunHop(ln net.Listener, upstream string, stop <-chan struct{}) error {
	h, err := NewHop(upstream)
	if err != nil {
		ln.Close()
		return err
	}
	addr := ln.Addr().String()
	srv := NewHopServer(h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("hop %s: %w", addr, err)
		}
		return nil
	case <-stop:
	}
	ctx, cancel := context.WithTimeout(context.Background(), referenceDrainWait)
	defer cancel()
	if err := srv.ShutdownWithContext(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("hop shutdown: %w", err)
	}
	<-errc
	return nil
}

// PaddedJSONContent returns a json_object reply whose answer is padded with
// words to about n bytes (the body-size variant's large responses); for
// n <= len(DefaultMockJSONContent) it returns "" (the mock's default).
func PaddedJSONContent(n int) string {
	if n <= len(DefaultMockJSONContent) {
		return ""
	}
	return `{"answer":"` + string(fillerText(n-40)) + `","confidence":0.9}`
}

// fillerText returns n bytes of plain words (no digits, addresses or
// anything else the masker looks for), for padding bodies.
func fillerText(n int) []byte {
	const words = "the parcel left the depot and is on its way to the customer who asked about delivery options and refunds "
	b := make([]byte, 0, n)
	for len(b) < n {
		b = append(b, words[:min(len(words), n-len(b))]...)
	}
	return b
}

// startHop starts `cairn loadtest-hop` in front of upstream.
func (e *runEnv) startHop(name, upstream string) (string, *child, error) {
	c, a, err := e.procs.startReady(e.ctx, name, e.o.Binary, []string{"loadtest-hop", "--listen", anyLoopback, "--upstream", upstream}, nil)
	if err != nil {
		return "", nil, err
	}
	return a.Listen, c, nil
}
