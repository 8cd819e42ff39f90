package proxy

import (
	"io"
	"sync"
)

// With ReduceMemoryUsage (issue 15: no read buffer held by an idle
// keep-alive connection) fasthttp waits for a connection's next request by
// reading its first byte alone, then reads the rest into a pooled buffer:
// two read(2) calls per request where a server that keeps its buffer makes
// one. byteConn turns the first into a readahead: a one-byte Read reads
// what the socket holds into a small pooled buffer and returns one byte of
// it, and the following Reads are served from the buffer. The buffer is
// held only from that first byte to the next Read, which fasthttp makes at
// once, so an idle connection still holds none.

// readaheadSize bounds one readahead: a typical chat request with its
// headers; a larger request reads its remainder from the socket.
const readaheadSize = 4 << 10

var readaheadBufs = sync.Pool{New: func() any { b := make([]byte, readaheadSize); return &b }}

// readahead holds bytes read from the socket and not yet returned. Used by
// the connection's serving goroutine only.
type readahead struct {
	buf *[]byte // pooled; nil when nothing is pending
	off int     // (*buf)[off:] is pending
	err error   // returned once the pending bytes are
}

// fill serves a one-byte read p from a readahead of up to readaheadSize
// bytes from src.
func (r *readahead) fill(p []byte, src io.Reader) (int, error) {
	bp := readaheadBufs.Get().(*[]byte)
	n, err := src.Read((*bp)[:readaheadSize])
	if n <= 1 {
		if n == 1 {
			p[0] = (*bp)[0]
		}
		readaheadBufs.Put(bp)
		return n, err
	}
	p[0] = (*bp)[0]
	*bp = (*bp)[:n]
	r.buf, r.off, r.err = bp, 1, err
	return 1, nil
}

// drain copies pending bytes into p; ok is false when none are pending.
func (r *readahead) drain(p []byte) (n int, err error, ok bool) {
	if r.buf == nil {
		return 0, nil, false
	}
	n = copy(p, (*r.buf)[r.off:])
	r.off += n
	if r.off < len(*r.buf) {
		return n, nil, true
	}
	*r.buf = (*r.buf)[:readaheadSize]
	readaheadBufs.Put(r.buf)
	err = r.err
	r.buf, r.off, r.err = nil, 0, nil
	return n, err, true
}
