package proxy

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/loadtest"
)

// Connections that never send a request line are closed at the read
// timeout without a response or a capture record, and counted; a request
// cut off halfway still gets its 408 and record.
func TestIdleConnectionsLeaveNoRecord(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{})
	tg := startGateway(t, fmt.Sprintf(`
data_dir: {{DATA}}
server: { read_timeout: 200ms }
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 5s }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: upstream-model } ]
`, up), nil)
	u, _ := url.Parse(tg.api)
	const idle = 50
	conns := make([]net.Conn, 0, idle)
	for range idle {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	half, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write([]byte("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"))
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, _ := io.ReadAll(c); len(b) > 0 {
			t.Errorf("idle connection got a response: %q", b)
		}
	}
	half.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(half)
	if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Errorf("half-sent request got %q; want a 408", b)
	}
	recs := tg.records(t, 1)
	// A connection's record is handed to capture before the connection
	// closes, and every connection above was read to its end: the
	// admitted count is final, with no wait.
	if a := tg.capture.Health().Accounting.Admitted; a != 1 {
		t.Errorf("records admitted to capture = %d; want 1 (the half-sent request)", a)
	}
	if len(recs) != 1 || recs[0].Status != 408 {
		t.Errorf("records = %d (first status %d); want only the half-sent request's 408", len(recs), recs[0].Status)
	}
	m := string(do(t, "GET", tg.admin+"/metrics", "", "").body)
	if want := fmt.Sprintf("cairn_idle_connections_closed_total %d\n", idle); !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %q", want)
	}
}
