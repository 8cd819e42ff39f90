package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// framingError says why a request's message framing is ambiguous, or ""
// when it is not. fasthttp already refuses duplicate Content-Length
// headers, transfer codings other than chunked and identity, and malformed
// chunks; it still serves a request that carries both Content-Length and
// Transfer-Encoding (chunked wins, RFC 9112 §6.3), treats
// "Transfer-Encoding: identity" as an empty body, accepts folded header
// lines and header names with spaces or tabs, and skips the body of a GET or HEAD
// so that the body's bytes are read as the next request. Another HTTP hop
// in front of the gateway may frame any of those differently, which is how
// requests are smuggled (issue 9), so the gateway refuses them all with 400
// and closes the connection.
//
// It scans the raw header block once and allocates nothing; h is only
// read, and only while the handler runs.
func framingError(h *fasthttp.RequestHeader) string {
	raw := h.RawHeaders()
	var contentLength, transferEncoding bool
	var clValue []byte
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			break // the empty line ending the header block
		}
		if line[0] == ' ' || line[0] == '\t' {
			return "folded (obs-fold) header lines are not accepted"
		}
		colon := bytes.IndexByte(line, ':')
		// fasthttp refuses every other non-token byte in a name, but not
		// a space or tab ("Content Length").
		if colon <= 0 || bytes.IndexByte(line[:colon], ' ') >= 0 || bytes.IndexByte(line[:colon], '\t') >= 0 {
			return "malformed header name"
		}
		name, value := line[:colon], line[colon+1:]
		switch {
		case len(name) == len(strContentLength) && bytes.EqualFold(name, strContentLength):
			contentLength, clValue = true, bytes.Trim(value, " \t")
		case len(name) == len(strTransferEncoding) && bytes.EqualFold(name, strTransferEncoding):
			transferEncoding = true
			if !bytes.EqualFold(bytes.Trim(value, " \t"), strChunked) {
				return "Transfer-Encoding other than chunked is not accepted"
			}
		}
	}
	switch {
	case contentLength && transferEncoding:
		return "a request must not carry both Content-Length and Transfer-Encoding"
	case (h.IsGet() || h.IsHead()) && (transferEncoding || (contentLength && !bytes.Equal(clValue, []byte{'0'}))):
		return "a GET or HEAD request must not carry a body"
	}
	return ""
}

var (
	strContentLength    = []byte("Content-Length")
	strTransferEncoding = []byte("Transfer-Encoding")
	strChunked          = []byte("chunked")
)
