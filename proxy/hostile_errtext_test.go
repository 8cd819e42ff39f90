package proxy

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tcpUpstream accepts connections on loopback and hands each to serve.
func tcpUpstream(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// readRequestHead reads one HTTP request's head and body from c, enough for
// the gateway's small POSTs.
func readRequestHead(c net.Conn) {
	buf := make([]byte, 64<<10)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil || strings.Contains(string(buf[:n]), "}") {
			return
		}
	}
}

// rstClose closes c so that the peer reads a reset (RST), not an EOF.
func rstClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

const errTextConfig = `
data_dir: {{DATA}}
providers:
  - { name: refused, base_url: "http://%s/v1", timeout: 2s }
  - { name: closer, base_url: "http://%s/v1", timeout: 2s }
  - { name: midbody, base_url: "http://%s/v1", timeout: 2s }
  - { name: midstream, base_url: "http://%s/v1", timeout: 2s }
routes:
  - { name: refused, targets: [ { provider: refused, model: m } ] }
  - { name: closer, targets: [ { provider: closer, model: m } ] }
  - { name: midbody, targets: [ { provider: midbody, model: m } ] }
  - name: midstream
    targets: [ { provider: midstream, model: m } ]
    contract: { mode: enforce, buffer_streams: true }
`

// TestHostileUpstreamErrorTexts: the error a client gets when an upstream
// attempt fails before any byte reached it (connection refused, a
// connection closed or reset before or during the answer, a buffered
// stream that broke) names the kind of failure and never the upstream's
// socket addresses. Issue 12.15 fixed the SSE error events; the JSON 502
// said "connect: dial tcp 10.0.0.9:443: connect: connection refused".
// The record's attempt keeps the detail for the operator.
func TestHostileUpstreamErrorTexts(t *testing.T) {
	refused := func() string { // a port nothing listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	closer := tcpUpstream(t, func(c net.Conn) { readRequestHead(c); rstClose(c) })
	midbody := tcpUpstream(t, func(c net.Conn) {
		readRequestHead(c)
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"id\":\"c1\",\"choices\":["))
		time.Sleep(20 * time.Millisecond)
		rstClose(c)
	})
	midstream := tcpUpstream(t, func(c net.Conn) {
		readRequestHead(c)
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"))
		ev := "data: {\"id\":\"s\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n"
		fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
		time.Sleep(20 * time.Millisecond)
		rstClose(c)
	})
	tg := startGateway(t, fmt.Sprintf(errTextConfig, refused, closer, midbody, midstream), nil)
	addrLike := regexp.MustCompile(`\d+\.\d+\.\d+\.\d+|127\.0\.0\.1|:\d{4,5}\b|\[[0-9a-f:]+\]`)
	n := 0
	for _, route := range []string{"refused", "closer", "midbody", "midstream"} {
		for _, stream := range []string{"false", "true"} {
			if route == "midstream" && stream == "false" {
				continue
			}
			t.Run(route+"/stream="+stream, func(t *testing.T) {
				extra := `"stream":` + stream
				if route == "midstream" { // buffered: the contract has something to check
					extra += `,"response_format":{"type":"json_object"}`
				}
				r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat(route, extra))
				n++
				if r.status < 500 {
					t.Fatalf("status %d; want a 5xx: %s", r.status, r.body)
				}
				msg, _, _ := apiErrorOf(t, r)
				if addrLike.MatchString(msg) || !strings.Contains(msg, "upstream "+route) {
					t.Errorf("error %q; want it to name the upstream and no socket address", msg)
				}
			})
		}
	}
	for _, rec := range tg.records(t, n) {
		if len(rec.Attempts) == 0 || rec.Attempts[len(rec.Attempts)-1].Error == "" {
			t.Errorf("record %s: the attempt lost the failure's detail: %+v", rec.GatewayRequestID, rec.Attempts)
		}
	}
}
