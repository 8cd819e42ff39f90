package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/loadtest"
)

// testGateway is a Gateway serving on real loopback sockets.
type testGateway struct {
	*Gateway
	api, admin string // base URLs
	dir        string
	cfgPath    string
}

func startMock(t testing.TB, o loadtest.MockOptions) (*loadtest.Mock, string) {
	t.Helper()
	m := loadtest.NewMock(o)
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("start mock: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, addr
}

// startGateway writes cfgYAML (with {{DATA}} replaced by a temp dir) to a
// file, loads it and serves it. env supplies secrets.
func startGateway(t testing.TB, cfgYAML string, env map[string]string) *testGateway {
	t.Helper()
	return startGatewayLog(t, cfgYAML, env, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startGatewayLog is startGateway with the gateway logging to log.
func startGatewayLog(t testing.TB, cfgYAML string, env map[string]string, log *slog.Logger) *testGateway {
	t.Helper()
	dir := t.TempDir()
	cfgYAML = strings.ReplaceAll(cfgYAML, "{{DATA}}", filepath.Join(dir, "data"))
	path := filepath.Join(dir, "cairn.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	cfg, err := configs.Load(data, configs.Options{Dir: dir, LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	cfg.Path = path
	g, err := New(Options{Config: cfg, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(api, admin) }()
	tg := &testGateway{Gateway: g, api: "http://" + api.Addr().String(), admin: "http://" + admin.Addr().String(), dir: dir, cfgPath: path}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
		<-done
	})
	// Wait until ready.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := http.Get(tg.admin + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return tg
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("gateway not ready")
	return nil
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, r.body)
	}
	return m
}

func (r result) errorCode() string {
	var e struct {
		Error struct {
			Code *string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	if e.Error.Code == nil {
		return ""
	}
	return *e.Error.Code
}

func do(t *testing.T, method, url, key string, body string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

func chat(model string, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello"}]%s}`, model, extra)
}

// records waits until the gateway has written n capture records and returns
// them from the data directory's JSONL files.
func (tg *testGateway) records(t *testing.T, n int) []capture.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var recs []capture.Record
	for time.Now().Before(deadline) {
		recs = recs[:0]
		files, _ := filepath.Glob(filepath.Join(tg.dir, "data", "capture", "*.jsonl"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			// The writer may be mid-line: only complete lines count.
			b = b[:bytes.LastIndexByte(b, '\n')+1]
			for _, line := range bytes.Split(b, []byte("\n")) {
				if len(bytes.TrimSpace(line)) == 0 {
					continue
				}
				var r capture.Record
				if err := json.Unmarshal(line, &r); err != nil {
					t.Fatalf("bad record line: %v", err)
				}
				recs = append(recs, r)
			}
		}
		if len(recs) >= n {
			return recs
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("got %d capture records; want %d", len(recs), n)
	return nil
}

// requestGoroutines counts the goroutines running the gateway's own code
// (methods of Gateway, the stream relay, upstream connections). Counting every
// goroutine in the process is noisy: fasthttp keeps idle workers for seconds
// and other tests' mocks wind down on their own schedule.
func requestGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("cairn/proxy.(*Gateway)")) || bytes.Contains(g, []byte("cairn/proxy.(*streamRelay)")) {
			n++
		}
	}
	return n
}

func goroutineDump() string {
	buf := make([]byte, 8<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
