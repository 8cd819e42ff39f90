package capture

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// maxEmbeddedDepth bounds how deep JSON held inside JSON strings (tool call
// arguments) is unpacked.
const maxEmbeddedDepth = 4

// maskingFailedJSON is what JSON returns when masking fails.
var maskingFailedJSON = []byte(`"` + PlaceholderMaskingFailed + `"`)

// JSON masks every string in the JSON document raw, whatever its shape, and
// returns a new valid JSON document. Strings that themselves hold a JSON
// object or array (tool call arguments) are masked value by value and kept
// as strings. Object keys are kept unless a detector matches them (a key
// that is an email address is masked like a value). Numbers that a detector
// recognises (a card number sent as a JSON number) become placeholder
// strings. A base64 data URL (an inlined image) is elided to its media type
// and size. Invalid JSON is masked as one string and returned as a JSON
// string. If masking fails for any reason the result is
// "[MASKING_FAILED]" as a JSON string, never the input.
//
// JSON does not retain raw and is safe for concurrent use.
func (m *Masker) JSON(raw []byte) (out []byte) {
	defer func() {
		if recover() != nil {
			out = append([]byte(nil), maskingFailedJSON...)
		}
	}()
	return m.appendJSON(nil, raw, 0)
}

func (m *Masker) appendJSON(dst, raw []byte, depth int) []byte {
	if !json.Valid(raw) {
		return appendJSONString(dst, m.maskValue(string(raw)))
	}
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '"':
			e := stringEnd(raw, i)
			tok := raw[i:e]
			key := isKey(raw, e)
			dst = m.appendMaskedString(dst, tok, key, depth)
			i = e
		case c == '-' || isDigit(c):
			e := i + 1
			for e < len(raw) && strings.IndexByte("0123456789+-.eE", raw[e]) >= 0 {
				e++
			}
			num := string(raw[i:e])
			if masked := m.mask(num); masked != num {
				dst = appendJSONString(dst, masked)
			} else {
				dst = append(dst, raw[i:e]...)
			}
			i = e
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst
}

// stringEnd returns the index just past the closing quote of the string
// token starting at raw[i] (raw is valid JSON).
func stringEnd(raw []byte, i int) int {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	panic("BUG: unterminated string in valid JSON")
}

// isKey reports whether the string token ending at e is an object key.
func isKey(raw []byte, e int) bool {
	for ; e < len(raw); e++ {
		switch raw[e] {
		case ' ', '\t', '\r', '\n':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}

// appendMaskedString appends the masked form of the string token tok.
func (m *Masker) appendMaskedString(dst, tok []byte, key bool, depth int) []byte {
	var s string
	if strings.IndexByte(string(tok), '\\') < 0 {
		s = string(tok[1 : len(tok)-1])
	} else if err := json.Unmarshal(tok, &s); err != nil {
		panic("BUG: invalid string in valid JSON")
	}
	if !key && depth < maxEmbeddedDepth {
		if t := strings.TrimSpace(s); len(t) >= 2 && (t[0] == '{' || t[0] == '[') && json.Valid([]byte(t)) {
			inner := m.appendJSON(nil, []byte(s), depth+1)
			if string(inner) == s {
				return append(dst, tok...)
			}
			return appendJSONString(dst, string(inner))
		}
	}
	var masked string
	if key {
		masked = m.mask(s)
	} else {
		masked = m.maskValue(s)
	}
	if masked == s && utf8.ValidString(s) {
		return append(dst, tok...)
	}
	return appendJSONString(dst, masked)
}

// maskValue masks a string value, eliding inlined base64 data.
func (m *Masker) maskValue(s string) string {
	if len(s) > 256 && strings.HasPrefix(s, "data:") {
		if k := strings.Index(s[:min(len(s), 256)], ";base64,"); k > 0 && !strings.HasPrefix(s[k+len(";base64,"):], "[ELIDED ") {
			return m.mask(s[:k+len(";base64,")]) + "[ELIDED " + itoa(len(s)-k-len(";base64,")) + " bytes]"
		}
	}
	return m.mask(s)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// HTML characters are not escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
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
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
