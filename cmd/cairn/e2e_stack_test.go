package main

// What the end-to-end tests share to bring up a stack: mock provider
// processes, a gateway serving a written config, and a webhook receiver.

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// startMockProc runs cairn mock-provider on a port of its own with the
// request ID prefix and any further flags, and returns its address once it
// answers.
func startMockProc(t *testing.T, prefix string, flags ...string) string {
	t.Helper()
	_, addr := startMockFlags(t, append([]string{"--request-id-prefix", prefix}, flags...)...)
	return addr
}

// startMockFlags runs cairn mock-provider with flags on a port of its own
// and returns it and its address once it answers.
func startMockFlags(t *testing.T, flags ...string) (*proc, string) {
	t.Helper()
	p, a := startBound(t, nil, append([]string{"mock-provider", "--listen", anyPort}, flags...)...)
	waitHTTP(t, p, "http://"+a.Listen+"/v1/models")
	return p, a.Listen
}

// hookSink is a webhook receiver on loopback that keeps every body.
type hookSink struct {
	url    string
	mu     sync.Mutex
	bodies [][]byte
}

func newHookSink(t *testing.T) *hookSink {
	t.Helper()
	h := &hookSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		h.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// received returns the bodies received so far.
func (h *hookSink) received() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...)
}
