// Package jsonstr appends Go strings as JSON string literals, the one
// piece of JSON encoding that schema, capture and loadtest all write by hand
// on their hot paths.
package jsonstr

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// Append appends s as a JSON string literal. It escapes what
// encoding/json escapes except the HTML characters <, > and & (valid JSON
// either way): quotes, backslashes, control characters, U+2028 and U+2029;
// each byte of invalid UTF-8 becomes \ufffd. Runs of bytes that need no
// escape are skipped eight at a time (swarSpecial) and copied in one
// append: capture quotes whole masked bodies with it (issue 15).
func Append(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) && swarSpecial(load8(s, i)) == 0 {
			i += 8
		}
		for i < len(s) && jsonPlain[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
		default:
			i += size
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// jsonPlain marks the bytes a JSON string holds as they are.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// load8 reads s[i:i+8] as a little-endian word (the compiler merges the
// byte loads into one).
func load8[T ~string | ~[]byte](s T, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// swarSpecial is non-zero when one of the eight bytes of x is not
// jsonPlain: a control character, '"', '\\', or a byte >= 0x80. (Each
// term is the classic "has a zero byte" test; together they are exact
// about whether such a byte exists.)
func swarSpecial(x uint64) uint64 {
	ctl := (x - 0x20*swarOnes) &^ x
	q := x ^ '"'*swarOnes
	q = (q - swarOnes) &^ q
	b := x ^ '\\'*swarOnes
	b = (b - swarOnes) &^ b
	return (ctl | q | b | x) & swarHigh
}
