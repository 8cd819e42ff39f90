package main

// What the end-to-end tests share to bring up a stack: mock provider
// processes, a gateway serving a written config, and a webhook receiver.

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
)

// startMockProc runs cairn mock-provider with the request ID prefix and
// any further flags, and returns its address once it answers.
func startMockProc(t *testing.T, prefix string, flags ...string) string {
	t.Helper()
	addr := freePort(t)
	startProc(t, nil, append([]string{"mock-provider", "--listen", addr, "--request-id-prefix", prefix}, flags...)...)
	waitHTTP(t, "http://"+addr+"/v1/models")
	return addr
}

// serveConfig writes cfg to cfgPath, starts cairn serve on it with env,
// and waits until its admin listener (a base URL) is ready.
func serveConfig(t *testing.T, cfgPath, cfg, admin string, env ...string) *proc {
	t.Helper()
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, env, "serve", "--config", cfgPath)
	waitHTTP(t, admin+"/readyz")
	return p
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
