package proxy

import (
	"context"
	"strings"
	"testing"
	"time"
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
	const n = 4
	tg, ends := startLongStreams(t, n)
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
