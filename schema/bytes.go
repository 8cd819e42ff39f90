package schema

import (
	"unsafe"

	"github.com/tidwall/gjson"
)

// b2s returns b as a string without copying. It is the one audited place
// where this package aliases a byte slice as a string (STYLE §2): the result
// is only ever handed to gjson for reading, and every string that outlives
// the call that made it is copied (strings.Clone) or documented as aliasing
// the caller's body. The caller must not modify b while the string is in use.
// BenchmarkParseChatRequest measures what it saves.
func b2s(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// parseTop returns body parsed by gjson as a top-level value and the
// offset of its first byte in body, so that the Index of a value found by
// ForEach on it is an offset into body after adding base.
func parseTop(body []byte) (r gjson.Result, base int) {
	base = skipSpace(body, 0)
	return gjson.Parse(b2s(body[base:])), base
}

// sub returns the bytes of body that raw (a gjson Raw found at offset off)
// spans, without copying when the offset checks out and as a copy otherwise.
func sub(body []byte, off int, raw string) []byte {
	if raw == "" {
		return nil
	}
	if off >= 0 && off+len(raw) <= len(body) && b2s(body[off:off+len(raw)]) == raw {
		return body[off : off+len(raw) : off+len(raw)]
	}
	return []byte(raw)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte {
	i := skipSpace(b, 0)
	j := len(b)
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}
