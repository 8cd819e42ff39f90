package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/configs"
)

// upstream is the pooled client pair for one provider: one that buffers
// (non-streaming requests, bounded by max_response_bytes) and one that
// streams response bodies (SSE). Both keep connections alive and never
// follow redirects. Safe for concurrent use.
type upstream struct {
	cfg    configs.Provider
	host   string // Host header and pool address
	prefix string // base path, e.g. /v1
	auth   string // "Bearer <key>" or ""
	// keyHeader carries the key instead of Authorization for the azure
	// (api-key) and anthropic (x-api-key) kinds (provider_kind.go).
	keyHeader string
	key       []byte // the provider key, for redact; nil without one
	buffered  *fasthttp.HostClient
	streamed  *fasthttp.HostClient
	conns     *connRegistry
	// stale counts requests resent because their pooled connection was
	// found closed or past its keep-alive before a byte was written.
	stale atomic.Int64
}

func newUpstream(p configs.Provider) (*upstream, error) {
	u, err := url.Parse(p.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("provider %s: parse base_url: %w", p.Name, err)
	}
	isTLS := u.Scheme == "https"
	addr := u.Host
	if u.Port() == "" {
		if isTLS {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	up := &upstream{
		cfg:    p,
		host:   u.Host,
		prefix: strings.TrimSuffix(u.Path, "/"),
		conns:  &connRegistry{},
	}
	if p.APIKey != "" {
		up.auth = "Bearer " + p.APIKey
		up.key = []byte(p.APIKey)
	}
	up.initKind(u)
	dialer := &net.Dialer{Timeout: p.ConnectTimeout.D(), KeepAlive: 30 * time.Second}
	newClient := func(stream bool) *fasthttp.HostClient {
		hc := &fasthttp.HostClient{
			Addr:                          addr,
			Name:                          "cairn",
			IsTLS:                         isTLS,
			MaxConns:                      p.MaxConns,
			MaxIdleConnDuration:           30 * time.Second,
			MaxConnWaitTimeout:            p.ConnectTimeout.D(),
			ReadBufferSize:                64 << 10,
			WriteBufferSize:               16 << 10,
			DisableHeaderNamesNormalizing: false,
			NoDefaultUserAgentHeader:      false,
			StreamResponseBody:            stream,
			SecureErrorLogMessage:         true,
			// POSTs are resent by the client itself only when the pooled
			// connection was found dead before a byte of the request was
			// written (errStaleConn); otherwise the route's fallbacks decide
			// what is retried, and only before the first byte reached the
			// client.
			RetryIfErr:                up.retryStale,
			MaxIdemponentCallAttempts: maxStaleResends,
		}
		if isTLS {
			hc.TLSConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		}
		if !stream {
			hc.MaxResponseBodySize = p.MaxResponseBytes
		} else {
			// A stream holds its connection's read buffer while it idles
			// between events (issue 15: ≤ 40 KB per idle stream). 8 KiB
			// still takes any provider's response headers (a few KiB);
			// events are parsed as they arrive, whatever their size.
			hc.ReadBufferSize = streamReadBufferSize
		}
		hc.Dial = func(a string) (net.Conn, error) {
			c, err := dialer.Dial("tcp", a)
			if err != nil {
				return nil, err
			}
			return up.conns.wrap(c, isTLS), nil
		}
		return hc
	}
	up.buffered = newClient(false)
	up.streamed = newClient(true)
	return up, nil
}

// redact replaces the provider's own API key in b, an upstream body about
// to be relayed to the client or recorded, with [REDACTED]. Providers echo
// a key they refused in their error messages, and the key is the
// gateway's secret, never the client's. b is returned unchanged (and not
// copied) when it does not hold the key; otherwise a new slice.
func (u *upstream) redact(b []byte) []byte {
	if len(u.key) == 0 || !bytes.Contains(b, u.key) {
		return b
	}
	return bytes.ReplaceAll(b, u.key, redacted)
}

var redacted = []byte("[REDACTED]")

// sameSettings reports whether an upstream built for a can serve b, so a
// reload keeps warm connection pools.
func sameSettings(a, b configs.Provider) bool {
	if a.BaseURL != b.BaseURL || a.APIKey != b.APIKey || a.Timeout != b.Timeout ||
		a.ConnectTimeout != b.ConnectTimeout || a.StreamIdleTimeout != b.StreamIdleTimeout ||
		a.StreamMaxDuration != b.StreamMaxDuration || a.MaxResponseBytes != b.MaxResponseBytes ||
		a.MaxConns != b.MaxConns || len(a.Headers) != len(b.Headers) {
		return false
	}
	if a.Kind != b.Kind || a.APIVersion != b.APIVersion || a.PathStyle != b.PathStyle ||
		a.AnthropicVersion != b.AnthropicVersion || a.MaxTokens != b.MaxTokens || len(a.Deployments) != len(b.Deployments) {
		return false
	}
	for k, v := range a.Deployments {
		if b.Deployments[k] != v {
			return false
		}
	}
	for k, v := range a.Headers {
		if b.Headers[k] != v {
			return false
		}
	}
	return true
}

// prepare fills req for a POST to path (e.g. "/chat/completions").
func (u *upstream) prepare(req *fasthttp.Request, path string, body []byte, traceparent []byte, stream bool) {
	req.Header.SetMethod(fasthttp.MethodPost)
	var uri [256]byte
	req.SetRequestURIBytes(append(append(uri[:0], u.prefix...), path...))
	req.Header.SetHost(u.host)
	if u.buffered.IsTLS {
		req.URI().SetScheme("https")
	} else {
		req.URI().SetScheme("http")
	}
	req.Header.SetContentType("application/json")
	if u.auth != "" {
		req.Header.Set("Authorization", u.auth)
	}
	u.kindHeaders(req)
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	if len(traceparent) > 0 {
		req.Header.SetBytesV("traceparent", traceparent)
	}
	for k, v := range u.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.SetBodyRaw(body)
}

// Upstream failure classes. A failure before the first response byte may be
// retried on the next target; nothing is retried once the client got a byte.
var (
	errUpstreamTimeout = errors.New("upstream timeout")
	errUpstreamConnect = errors.New("upstream connect error")
	errUpstreamIO      = errors.New("upstream connection error")
)

// classify maps a client error to a sentinel and a short, secret-free text.
func classify(err error) (class error, text string) {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errUpstreamTimeout, "timeout"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, fasthttp.ErrNoFreeConns):
		return errUpstreamConnect, "connect: " + shortErr(err)
	case isDialError(err):
		return errUpstreamConnect, "connect: " + shortErr(err)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return errUpstreamIO, "response body too large"
	default:
		return errUpstreamIO, shortErr(err)
	}
}

func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// shortErr strips an error to its last segment; upstream errors never carry
// secrets (keys are in headers, never in URLs), but they can be long.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// drain reads and discards at most n bytes from r.
func drain(r io.Reader, n int64) {
	_, _ = io.CopyN(io.Discard, r, n)
}
