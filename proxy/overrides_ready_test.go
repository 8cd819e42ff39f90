package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/cairnhq/cairn/loadtest"
)

// A replica that starts with Redis down and no local copy of the
// overrides is not ready (it could serve a rolled-back cohort); it turns
// ready once Redis answers and the overrides are applied.
func TestOverridesReadyWaitsForTheStore(t *testing.T) {
	rs := redistest.Start(t)
	_, addr := startMock(t, loadtest.MockOptions{RequestIDPrefix: "rd"})
	rs.Kill()
	dir := t.TempDir()
	y := fmt.Sprintf(strings.ReplaceAll(overridesConfig, "{{DATA}}", filepath.Join(dir, "data")), addr, "v1", "x") + "redis_url: " + rs.URL() + "\n"
	cfg, err := configs.Load([]byte(y), configs.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	api, _ := net.Listen("tcp", "127.0.0.1:0")
	admin, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- g.Serve(api, admin) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
		<-done
	})
	ready := func() (int, string) {
		r, err := http.Get("http://" + admin.Addr().String() + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	time.Sleep(200 * time.Millisecond)
	if code, body := ready(); code != 503 || !strings.Contains(body, "not yet read") {
		t.Fatalf("readyz with Redis down and no local copy = %d %s; want 503 naming the overrides", code, body)
	}
	rs.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := ready()
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz after Redis returned = %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "overrides.json")); err != nil {
		t.Errorf("no local copy of the overrides after the first read: %v", err)
	}
}
