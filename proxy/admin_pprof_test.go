package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

const pprofConfig = `
data_dir: {{DATA}}
admin_token_env: ADMIN_TOKEN
providers:
  - { name: p, base_url: "http://127.0.0.1:1/v1", timeout: 2s }
routes:
  - { name: r, targets: [ { provider: p, model: m } ] }
`

// TestAdminPprof: the runtime's profiles are served on the admin listener
// behind the admin token (a CPU profile of the gateway under its real load
// is how the hot path is measured), never without it; the command line is
// not served, and a profile longer than two minutes is refused.
func TestAdminPprof(t *testing.T) {
	const tok = "admin-token-for-pprof"
	g := startGateway(t, pprofConfig, map[string]string{"ADMIN_TOKEN": tok})
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/", "/debug/pprof/profile?seconds=1"} {
		if r := do(t, "GET", g.admin+path, "", ""); r.status != 401 {
			t.Errorf("GET %s without the token: %d; want 401", path, r.status)
		}
	}
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/goroutine", "/debug/pprof/profile?seconds=1"} {
		r := do(t, "GET", g.admin+path, tok, "")
		if r.status != 200 {
			t.Errorf("GET %s: %d %s; want 200", path, r.status, r.body)
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(r.body))
		if err != nil {
			t.Errorf("GET %s: not a gzipped profile: %v", path, err)
			continue
		}
		if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
			t.Errorf("GET %s: profile of %d bytes, %v", path, len(b), err)
		}
	}
	if r := do(t, "GET", g.admin+"/debug/pprof/", tok, ""); r.status != 200 || !bytes.Contains(r.body, []byte("heap")) {
		t.Errorf("GET /debug/pprof/: %d; want the index listing heap", r.status)
	}
	if r := do(t, "GET", g.admin+"/debug/pprof/cmdline", tok, ""); r.status != 404 {
		t.Errorf("GET /debug/pprof/cmdline: %d; want 404", r.status)
	}
	for _, q := range []string{"seconds=121", "seconds=0", "seconds=x"} {
		if r := do(t, "GET", g.admin+"/debug/pprof/profile?"+q, tok, ""); r.status != 400 {
			t.Errorf("GET /debug/pprof/profile?%s: %d; want 400", q, r.status)
		}
	}
}
