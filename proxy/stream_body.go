package proxy

import (
	"bytes"
	"io"
	"sync"
)

// streamBufSize is the relay's upstream read buffer. An idle stream holds
// it while it waits for the next event, so it is small (issue 15: ≤ 40 KB
// per idle stream; it was 32 KiB, then 4 KiB). It reads from the upstream
// connection's own buffer, not the socket, so a smaller one costs no
// system calls; an event larger than it takes several reads, which the
// SSE parser joins. 512 bytes hold two typical token events (~230 bytes
// each); a burst takes a few more reads of memory, no system call.
const streamBufSize = 512

// streamReadBufferSize is the streamed upstream client's per-connection
// read buffer, held while a stream idles. It also bounds the provider's
// response headers: 5 KiB is more than twice what OpenAI-compatible
// providers send on a stream (1–2 KiB, cookies included) and more than
// fasthttp's default (issue 15: ≤ 40 KB per idle stream; it was 8 KiB).
const streamReadBufferSize = 5 << 10

// serverWriteBufferSize is the API server's per-connection write buffer,
// held by a stream for its whole life. Bodies larger than it are written
// straight through, so a small buffer costs small responses nothing.
const serverWriteBufferSize = 2 << 10

// streamOut is where the relay writes the client's bytes: a chunk per
// Write, sent by Flush.
type streamOut interface {
	Write(p []byte) (int, error)
	Flush() error
}

// relayBody is the response body of a relayed stream. fasthttp's server
// goroutine calls WriteTo once the handler has returned (the body
// implements fasthttp.BodyWriterTo), and the relay runs right there: each
// Write to fasthttp's chunked writer is one chunk, flushed to the client.
// So a stream costs one goroutine, the connection's own, not a second one
// behind a pipe with its own buffers as SetBodyStreamWriter does (issue
// 15). Close releases the stream when the body is never written (the
// connection went away first).
type relayBody struct {
	g    *Gateway
	s    *streamRelay
	perr error
	once sync.Once
	rest *bytes.Reader // Read's fallback; fasthttp uses WriteTo
}

// SupportsBodyWriteTo tells fasthttp that WriteTo may replace Read.
func (b *relayBody) SupportsBodyWriteTo() bool { return true }

// WriteTo relays the stream to w, flushing each chunk (fasthttp's chunked
// writer flushes every Write).
func (b *relayBody) WriteTo(w io.Writer) (int64, error) {
	cw := &countingOut{w: w}
	b.once.Do(func() { b.run(cw) })
	return cw.n, nil
}

// Read is only a fallback for a caller that reads the body instead of
// writing it out: it relays the whole stream into memory first.
func (b *relayBody) Read(p []byte) (int, error) {
	if b.rest == nil {
		var buf bytes.Buffer
		_, _ = b.WriteTo(&buf)
		b.rest = bytes.NewReader(buf.Bytes())
	}
	return b.rest.Read(p)
}

// Close ends a stream whose body was never written: the client is gone.
func (b *relayBody) Close() error {
	b.once.Do(func() { b.run(closedOut{}) })
	return nil
}

func (b *relayBody) run(out streamOut) {
	g, s := b.g, b.s
	defer g.streams.Done()
	defer g.streamsOpen.Add(-1)
	defer g.untrackStream(s)
	g.relay(out, s, b.perr)
}

// countingOut sends each Write as one chunk; fasthttp's chunked writer
// has already flushed it, so Flush has nothing left to do.
type countingOut struct {
	w io.Writer
	n int64
}

func (c *countingOut) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingOut) Flush() error { return nil }

// closedOut is a client that went away before the first byte.
type closedOut struct{}

func (closedOut) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
func (closedOut) Flush() error              { return io.ErrClosedPipe }
