package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// countingListener counts the Read calls on the connections it accepts
// that return bytes, below everything the gateway wraps them in.
type countingListener struct {
	net.Listener
	reads *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, reads: l.reads}, nil
}

type countingConn struct {
	net.Conn
	reads *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.reads.Add(1)
	}
	return n, err
}

// TestKeepAliveRequestOneRead: a request on a keep-alive connection costs
// one read(2) when it fits the readahead, not two (fasthttp's
// ReduceMemoryUsage reads the first byte of each request alone; issue 15),
// and requests larger than the readahead, sent one after the other on the
// same connection, still arrive whole.
func TestKeepAliveRequestOneRead(t *testing.T) {
	up := startHotUpstream(t, hotReply)
	dir := t.TempDir()
	yaml := fmt.Sprintf(hotConfig, up, "")
	yaml = strings.ReplaceAll(yaml, "{{DATA}}", filepath.Join(dir, "data"))
	cfg, err := configs.Load([]byte(yaml), configs.Options{Dir: dir, LookupEnv: func(k string) (string, bool) {
		return "bench-key", k == "BENCH_KEY"
	}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	done := make(chan error, 1)
	go func() { done <- g.Serve(countingListener{Listener: api, reads: &reads}, admin) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
		<-done
	})
	waitReady(t, "http://"+admin.Addr().String())

	c := newHotClient("http://" + api.Addr().String() + "/v1/chat/completions")
	c.c.MaxConnsPerHost = 1 // one keep-alive connection
	defer c.release()
	if err := c.post(hotBody); err != nil { // the connection's first request
		t.Fatal(err)
	}
	const n = 200
	r0 := reads.Load()
	for range n {
		if err := c.post(hotBody); err != nil {
			t.Fatal(err)
		}
	}
	if got := reads.Load() - r0; got > n+n/10 {
		t.Errorf("%d requests of %d bytes on one keep-alive connection took %d reads; want about one each", n, len(hotBody), got)
	}
	big := paddedHotBody(3 * readaheadSize)
	for i := range 20 {
		if err := c.post(big); err != nil {
			t.Fatalf("request %d of %d bytes: %v", i, len(big), err)
		}
		if err := c.post(hotBody); err != nil {
			t.Fatalf("small request after big request %d: %v", i, err)
		}
	}
}

func waitReady(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := http.Get(admin + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("gateway not ready")
}
