package loadtest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestReferenceProxy(t *testing.T) {
	m := NewMock(MockOptions{ChunkInterval: 40 * time.Millisecond, Chunks: 4, RequestIDPrefix: "up"})
	upstream, err := m.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- RunReference(ln, "http://"+upstream, stop) }()

	t.Run("non-streaming", func(t *testing.T) {
		resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json",
			strings.NewReader(string(benchBody("m", "u1", false))))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !hasChoices(b) || !strings.HasPrefix(resp.Header.Get("x-request-id"), "up-") {
			t.Errorf("status %d, x-request-id %q, body %s; want the mock's 200 completion", resp.StatusCode, resp.Header.Get("x-request-id"), b)
		}
	})

	t.Run("SSE is flushed per event", func(t *testing.T) {
		start := time.Now()
		resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json",
			strings.NewReader(string(benchBody("m", "u2", true))))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		first := time.Since(start)
		if err != nil || !strings.HasPrefix(line, "data: ") {
			t.Fatalf("first line %q, %v", line, err)
		}
		rest, _ := io.ReadAll(br)
		total := time.Since(start)
		if !strings.Contains(string(rest), "data: [DONE]") {
			t.Errorf("stream lacks [DONE]: %s", rest)
		}
		// 4 pieces 40 ms apart: the first event must not wait for the end.
		if total-first < 80*time.Millisecond {
			t.Errorf("first event after %s, end after %s; want the first event flushed before the rest", first, total)
		}
	})

	t.Run("bad upstream URL", func(t *testing.T) {
		if _, err := NewReferenceProxy("ftp://x"); err == nil {
			t.Errorf("NewReferenceProxy(ftp://x) = nil error")
		}
	})

	close(stop)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunReference = %v; want nil after stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunReference did not return after stop")
	}
}
