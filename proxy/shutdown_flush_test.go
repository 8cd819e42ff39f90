package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/loadtest"
)

// When Shutdown returns, the process may exit at once (cairn serve does),
// so every cut stream's server_shutting_down event must already be on its
// client's socket, not in fasthttp's pipe between the stream's body writer
// and the connection. Shutdown used to return once the body writers
// returned, before fasthttp had copied their last bytes to the connection
// (and it left the connections open as keep-alive ones): under load a
// SIGTERMed cairn exited before one of ten streams got its event
// (TestEvidenceSIGTERMCutsLongStreams, 9 of 10 cut). Now the API server's
// shutdown, which returns once every client connection is closed after its
// response was flushed, spans the drain and its grace.
func TestShutdownFlushesCutStreamsBeforeReturning(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{ChunkInterval: 100 * time.Millisecond, Chunks: 400})
	tg := startGateway(t, fmt.Sprintf(`
data_dir: {{DATA}}
server: { drain_timeout: 300ms }
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 5s }
routes:
  - name: support-bot
    targets: [ { provider: primary, model: upstream-model } ]
`, up), nil)
	const n = 4
	type streamEnd struct {
		last string
		err  error
	}
	ends := make(chan streamEnd, n)
	var started sync.WaitGroup
	started.Add(n)
	for range n {
		go func() {
			resp, err := http.Post(tg.api+"/v1/chat/completions", "application/json",
				strings.NewReader(chat("support-bot", `"stream":true`)))
			if err != nil {
				started.Done()
				ends <- streamEnd{err: err}
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			first, last := true, ""
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					if first {
						started.Done()
						first = false
					}
					last = sc.Text()
				}
			}
			// sc.Err is nil only if the chunked body ended with its
			// terminator: a connection closed mid-body is an unexpected EOF.
			ends <- streamEnd{last: last, err: sc.Err()}
		}()
	}
	started.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tg.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v; want nil", err)
	}
	// Every client connection is closed by the server, which fasthttp does
	// only after flushing the connection's last response. (After a
	// completed shutdown fasthttp reports -1: it subtracts the listener it
	// counts while serving.)
	if open := tg.Gateway.api.GetOpenConnectionsCount(); open > 0 {
		t.Errorf("%d client connections still open when Shutdown returned; want 0 (their last bytes may not be written)", open)
	}
	for range n {
		select {
		case e := <-ends:
			if e.err != nil || !strings.Contains(e.last, `"code":"server_shutting_down"`) {
				t.Errorf("stream ended with %q (err %v); want a server_shutting_down error event and a whole body", e.last, e.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a stream's client still reading 30 s after Shutdown returned; want its connection closed")
		}
	}
}
