package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// Reference proxy tuning: the floor any Go proxy should beat is the standard
// library's ReverseProxy with a Transport that keeps enough idle upstream
// connections for the benchmark's concurrency (the default of 2 idle
// connections per host would measure connection churn, not proxying).
const (
	referenceIdleConns   = 4096
	referenceDrainWait   = 5 * time.Second
	referenceReadHeader  = 10 * time.Second
	referenceIdleTimeout = 60 * time.Second
)

// NewReferenceProxy returns Go's net/http/httputil.ReverseProxy forwarding
// every request to upstream (a base URL such as "http://127.0.0.1:9000"),
// tuned as a production Go proxy would be: keep-alive pools sized for high
// concurrency, no compression, and FlushInterval -1 so SSE is flushed per
// write. The handler is safe for concurrent use and lives as long as its
// Transport; callers own neither.
func NewReferenceProxy(upstream string) (http.Handler, error) {
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("reference proxy: upstream %q is not an http(s) URL", upstream)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          referenceIdleConns,
		MaxIdleConnsPerHost:   referenceIdleConns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 60 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = u.Host
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, `{"error":{"message":"reference proxy: upstream failed","type":"server_error","param":null,"code":null}}`)
		},
	}
	// Full duplex: the handler still reads the request body (the
	// Transport's writeLoop probes it for EOF after Content-Length bytes)
	// while it writes the response. Without it, net/http's server consumes
	// and closes an unfinished body when the handler first writes, so when
	// the upstream answers fast the writeLoop's next Read fails with
	// ErrBodyReadAfterClose, the Transport closes the upstream connection
	// and the stream is cut after its first events (issue 14.12: about 1
	// run in 15 of TestReferenceProxy lost [DONE] this way).
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		rp.ServeHTTP(w, r)
	}), nil
}

// RunReference serves NewReferenceProxy(upstream) on ln until stop is
// closed, then drains for up to 5 s (the hidden
// `cairn loadtest-reference --listen ADDR --upstream URL` subcommand). It
// closes ln.
func RunReference(ln net.Listener, upstream string, stop <-chan struct{}) error {
	h, err := NewReferenceProxy(upstream)
	if err != nil {
		ln.Close()
		return err
	}
	addr := ln.Addr().String()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: referenceReadHeader,
		IdleTimeout:       referenceIdleTimeout,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("reference proxy %s: %w", addr, err)
		}
		return nil
	case <-stop:
	}
	ctx, cancel := context.WithTimeout(context.Background(), referenceDrainWait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("reference proxy shutdown: %w", err)
	}
	<-errc
	return nil
}
