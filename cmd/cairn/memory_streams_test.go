package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const streamMemConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
providers:
  - { name: slow, base_url: "http://%[4]s/v1", timeout: 30s, max_conns: 4096 }
routes:
  - name: chat
    targets: [ { provider: slow, model: gpt-4o-mini } ]
`

// procStatus reads a field of /proc/PID/status in KiB.
func procStatusKiB(t *testing.T, pid int, field string) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// openStream sends a streaming chat request on a raw connection and reads
// until the first event arrived; the stream then idles (the mock sends the
// next chunk seconds later) with the connection left open.
func openStream(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	body := `{"model":"chat","stream":true,"messages":[{"role":"user","content":"hello"}]}`
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("read stream: %w", err)
		}
		if bytes.HasPrefix(line, []byte("HTTP/1.1 ")) && !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
			c.Close()
			return nil, fmt.Errorf("stream refused: %s", line)
		}
		if bytes.Contains(line, []byte("data: ")) {
			return c, nil
		}
	}
}

// Issue 15: an idle stream costs one goroutine and at most 40 KB of the
// gateway's RSS (it was ~97 KB: 64+32 KiB upstream buffers, a 32 KiB relay
// buffer, and a second goroutine behind a pipe). The real binary relays N
// streams from a mock that sends a chunk every few seconds; RSS (VmRSS)
// and go_goroutines are read with the streams open and idle.
func TestIdleStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of streams through the real binary")
	}
	const n = 1000 // the 1,000-stream run: fewer and the fixed costs the first streams bring (heap arenas, pools) weigh ~2 KB per stream
	mock := startMockProc(t, "slow", "--chunk-interval", "4s", "--chunks", "8")
	g := startRelGateway(t, fmt.Sprintf(streamMemConfig, "%[1]s", "%[2]s", "%[3]s", mock))
	pid := g.gw.cmd.Process.Pid
	addr := strings.TrimPrefix(g.api, "http://")

	// Warm up: the first streams allocate pools and the runtime's own
	// structures, which later streams reuse.
	var warm []net.Conn
	for range 20 {
		c, err := openStream(addr)
		if err != nil {
			t.Fatal(err)
		}
		warm = append(warm, c)
	}
	for _, c := range warm {
		c.Close()
	}
	time.Sleep(500 * time.Millisecond)
	rss0 := procStatusKiB(t, pid, "VmRSS")
	m0 := metrics(t, g.admin)
	gor0 := metricValue(t, m0, "go_goroutines")

	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := openStream(addr)
		if err != nil {
			t.Fatalf("stream %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	time.Sleep(300 * time.Millisecond)
	rss1 := procStatusKiB(t, pid, "VmRSS")
	m1 := metrics(t, g.admin)
	gor1 := metricValue(t, m1, "go_goroutines")
	for _, name := range []string{"go_memory_heap_objects_bytes", "go_memory_stacks_bytes", "go_memory_heap_unused_bytes", "go_memory_heap_free_bytes"} {
		t.Logf("%s: %.1f KB per stream", name, (metricValue(t, m1, name)-metricValue(t, m0, name))/n/1000)
	}
	perStream := (rss1 - rss0) * 1024 / n
	gorPerStream := (gor1 - gor0) / n
	t.Logf("%d idle streams: RSS %.0f → %.0f KiB (%.1f KB per stream), goroutines %.0f → %.0f (%.2f per stream)",
		n, rss0, rss1, perStream/1000, gor0, gor1, gorPerStream)
	// Issue 15: ≤ 40 KB. What is left is the connection goroutine's stack
	// (16 KB: it grew while handling the request), the upstream
	// connection's 5 KiB read buffer, the server's 2 KiB write buffer, a
	// 512-byte relay buffer and the connections' and the exchange's
	// structures; the server's 32 KiB read buffer goes back to its pool
	// once the request is read, and so does its copy of the body. Measured 38.1 KB over 1,000 streams (38.7–40.4 over 400); 50.6 KB before
	// (68.6 KB before the relay moved onto the connection's goroutine).
	if perStream > 40_000 {
		t.Errorf("RSS per idle stream = %.1f KB; want ≤ 40 KB", perStream/1000)
	}
	if gorPerStream > 1.1 {
		t.Errorf("goroutines per idle stream = %.2f; want 1 (the connection's own)", gorPerStream)
	}
}
