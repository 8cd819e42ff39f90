package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cairnhq/cairn/loadtest"
)

// FuzzRawRequest feeds arbitrary bytes to the gateway's API port over a
// real connection (the request reader: HTTP framing, headers, body limits,
// then the JSON reader) and checks that the gateway never crashes, answers
// only well-formed HTTP, never reaches the upstream more often than it
// answered 200, and, once it refuses a request and closes, answers nothing
// more on that connection (no smuggled request behind a refused one).
// Seeds: the smuggling probes of TestReliabilitySmuggling, plus the
// committed corpus in testdata/fuzz/FuzzRawRequest.
func FuzzRawRequest(f *testing.F) {
	for _, p := range smugglingProbes {
		f.Add([]byte(p.raw))
	}
	f.Add([]byte(smuggled))
	f.Add([]byte(smuggled + smuggled))
	f.Add([]byte(probeHead + "Transfer-Encoding: chunked\r\n\r\n" + chunked(probeBody)))

	m := loadtest.NewMock(loadtest.MockOptions{})
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	tg := startGateway(f, fmt.Sprintf(badInputConfig, addr), testEnv)
	f.Cleanup(http.DefaultClient.CloseIdleConnections)

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", hostOf(tg.api))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		before := m.Requests()
		_, _ = c.Write(in)
		_ = c.(*net.TCPConn).CloseWrite() // no more bytes: the server ends the connection
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		out, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the gateway held the connection 5s after the client finished: %q", in)
		}
		br := bufio.NewReader(bytes.NewReader(out))
		ok200, n := 0, 0
		closed := false
		for {
			if _, err := br.Peek(1); err == io.EOF {
				break
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d is not HTTP: %v\ninput %q\noutput %q", n, err, in, out)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if closed {
				t.Fatalf("answered again after closing: input %q\noutput %q", in, out)
			}
			n++
			if resp.StatusCode == 200 {
				ok200++
			}
			if resp.Close && resp.StatusCode >= 400 {
				closed = true
			}
		}
		if up := m.Requests() - before; up > int64(ok200) {
			t.Fatalf("the upstream saw %d requests but the client got %d answers of 200: input %q\noutput %q", up, ok200, in, out)
		}
	})
}
