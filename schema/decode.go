package schema

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// decodeValid decodes b into what encoding/json's Decoder with UseNumber
// gives (map[string]any, []any, string, json.Number, bool, nil) in one
// pass. b must be exactly one valid JSON value nested no deeper than
// MaxValueDepth, as jsonscan.Check reported it: the decoder then needs no
// error handling and recurses at most that deep. The Decoder walked the
// bytes three times (buffering, scanning, unquoting); a 256 KB answer
// spent half the gateway's CPU there (issue 15). Nothing returned aliases
// b.
func decodeValid(b []byte) any {
	d := valueDecoder{s: b2s(b)}
	v, _ := d.value(skipSpaceS(d.s, 0))
	return v
}

type valueDecoder struct {
	s   string
	buf []byte // unquoting scratch
}

// value decodes the value at s[i] and returns it and the index past it.
func (d *valueDecoder) value(i int) (any, int) {
	s := d.s
	switch s[i] {
	case '{':
		m := map[string]any{}
		i = skipSpaceS(s, i+1)
		if s[i] == '}' {
			return m, i + 1
		}
		for {
			end := stringEndS(s, i)
			k := d.str(s[i:end])
			i = skipSpaceS(s, end) // at ':'
			i = skipSpaceS(s, i+1) // at the value
			v, j := d.value(i)
			m[k] = v // a repeated key: the last wins, as in encoding/json
			i = skipSpaceS(s, j)
			if s[i] == '}' {
				return m, i + 1
			}
			i = skipSpaceS(s, i+1) // past ','
		}
	case '[':
		a := []any{}
		i = skipSpaceS(s, i+1)
		if s[i] == ']' {
			return a, i + 1
		}
		for {
			v, j := d.value(i)
			a = append(a, v)
			i = skipSpaceS(s, j)
			if s[i] == ']' {
				return a, i + 1
			}
			i = skipSpaceS(s, i+1)
		}
	case '"':
		end := stringEndS(s, i)
		return d.str(s[i:end]), end
	case 't':
		return true, i + 4
	case 'f':
		return false, i + 5
	case 'n':
		return nil, i + 4
	}
	j := i
	for j < len(s) && numberByte(s[j]) {
		j++
	}
	return json.Number(strings.Clone(s[i:j])), j
}

func numberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// str returns the value of the string token raw (quotes included) as
// encoding/json would: escapes decoded, a lone surrogate or a byte that is
// not UTF-8 replaced by U+FFFD.
func (d *valueDecoder) str(raw string) string {
	inner := raw[1 : len(raw)-1]
	if strings.IndexByte(inner, '\\') < 0 && utf8.ValidString(inner) {
		return strings.Clone(inner)
	}
	d.buf = appendUnquote(d.buf[:0], raw)
	if utf8.Valid(d.buf) {
		return string(d.buf)
	}
	out := make([]byte, 0, len(d.buf)+8)
	for b := d.buf; len(b) > 0; {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return string(out)
}
