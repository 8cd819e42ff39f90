package capture

import (
	"bytes"
	"strings"
	"unicode/utf16"
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
	return m.appendJSON(nil, raw, 0, false, false)
}

// appendJSON appends the masked form of raw. valid says raw is already
// known to be valid JSON. compact drops the whitespace between tokens (the
// form records store: one line per record).
func (m *Masker) appendJSON(dst, raw []byte, depth int, valid, compact bool) []byte {
	if !valid && !validJSON(raw) {
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
			for e < len(raw) && numberByte[raw[e]] {
				e++
			}
			dst = m.appendMaskedNumber(dst, raw[i:e])
			i = e
		case compact && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			i++
		default:
			// Structural bytes, literals and whitespace: copy up to the
			// next string or number.
			e := i + 1
			for e < len(raw) && plainJSONByte[raw[e]] && !(compact && isSpace(raw[e])) {
				e++
			}
			dst = append(dst, raw[i:e]...)
			i = e
		}
	}
	return dst
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// numberByte marks the bytes of a JSON number; plainJSONByte the bytes
// appendJSON copies as they are (neither a string nor a number starts
// there).
var numberByte, plainJSONByte = func() (num, plain [256]bool) {
	for _, c := range []byte("0123456789+-.eE") {
		num[c] = true
	}
	for c := range plain {
		plain[c] = c != '"' && c != '-' && !isDigit(byte(c))
	}
	return num, plain
}()

// stringEnd returns the index just past the closing quote of the string
// token starting at raw[i] (raw is valid JSON): the first quote not escaped
// by an odd number of backslashes.
func stringEnd(raw []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexByte(raw[j:], '"')
		if k < 0 {
			panic("BUG: unterminated string in valid JSON")
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && raw[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
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

// appendMaskedNumber appends a number token, or a placeholder string when
// a detector recognises it (a card number sent as a JSON number).
func (m *Masker) appendMaskedNumber(dst, tok []byte) []byte {
	if f := scanFeatures(tok); !m.mayMatch(&f) {
		return append(dst, tok...)
	}
	num := string(tok)
	if masked := m.mask(num); masked != num {
		return appendJSONString(dst, masked)
	}
	return append(dst, tok...)
}

// appendMaskedString appends the masked form of the string token tok.
func (m *Masker) appendMaskedString(dst, tok []byte, key bool, depth int) []byte {
	body := tok[1 : len(tok)-1]
	// Fast path: a token whose features rule out every detector, that
	// holds valid UTF-8, no data URL to elide and nothing to truncate is
	// kept as it is, without decoding it. This is sound for tokens with
	// escapes other than \uXXXX too: such an escape decodes to a quote,
	// backslash, slash or control character, which no gate counts, and
	// every byte a gate looks at (digits, letters next to '-' or '_',
	// separators between digit groups) reads the same before and after
	// decoding. It holds for JSON held in the string as well: its
	// strings and numbers are parts of the decoded string, and features
	// only shrink on a part of a string.
	f := scanFeatures(body)
	if !f.uEscape && !m.mayMatch(&f) && (!f.nonASCII || utf8.Valid(body)) &&
		len(body) <= maxMaskedString && !mayHoldDataURL(body) {
		return append(dst, tok...)
	}
	// A token without escapes is its own text: it is masked through a
	// view of the body instead of a copy (issue 15). The view does not
	// outlive this call: what is kept is either tok or a new string.
	s, fs := bytesView(body), &f
	if f.escape {
		s, fs = decodeJSONString(tok), nil // decoding changed the features
	}
	if !key && depth < maxEmbeddedDepth {
		if t := strings.TrimSpace(s); len(t) >= 2 && (t[0] == '{' || t[0] == '[') && validJSON(t) {
			inner := m.appendJSON(nil, []byte(s), depth+1, true, false)
			if string(inner) == s {
				return append(dst, tok...)
			}
			return appendJSONString(dst, string(inner))
		}
	}
	ascii, escaped := !f.nonASCII, f.escape
	var masked string
	if key {
		masked = m.maskWith(s, fs)
	} else {
		masked = m.maskValueWith(s, fs)
	}
	if masked == s && utf8.ValidString(s) {
		return append(dst, tok...)
	}
	if !escaped && m.plainPlaceholders && (ascii || plainJSONText(masked)) {
		// The token had no escape, so its text holds no quote, backslash
		// or control character; masking only cut it and wrote
		// placeholders, marks and counts that hold none either. It is its
		// own JSON string body: quoting it as appendJSONString would is a
		// copy, not a second pass over every byte (issue 15).
		dst = append(dst, '"')
		dst = append(dst, masked...)
		return append(dst, '"')
	}
	return appendJSONString(dst, masked)
}

// plainJSONText reports whether appendJSONString would write s unchanged
// between quotes, given that s holds no ASCII byte it escapes: s is valid
// UTF-8 without U+2028 or U+2029.
func plainJSONText(s string) bool {
	return utf8.ValidString(s) && !strings.Contains(s, "\u2028") && !strings.Contains(s, "\u2029")
}

// mayHoldDataURL reports whether the string token body body (no \u
// escapes) may decode to a data URL that maskValueWith elides: a string
// that starts with "data:", or JSON held in the string (it starts with '{'
// or '[' after white space) with one inside. Only then is the body
// searched for "data:": in prose the search stops at every 'd' and 'a' and
// cost more than the feature scan (issue 15).
func mayHoldDataURL(body []byte) bool {
	if len(body) <= 256 {
		return false
	}
	if bytes.HasPrefix(body, []byte("data:")) {
		return true
	}
	i := 0
	for i < len(body) {
		switch c := body[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '\\' && i+1 < len(body) && strings.IndexByte("ntrf", body[i+1]) >= 0:
			i += 2 // an escaped space TrimSpace removes
		case c == '{' || c == '[' || c >= utf8.RuneSelf: // JSON, or maybe Unicode space first
			return containsDataScheme(body)
		default:
			return false
		}
	}
	return false
}

// containsDataScheme reports whether b contains "data:". It jumps from
// colon to colon (rare in text, and IndexByte is the fastest scan there
// is) instead of searching for the word, which stops at every 'd'.
func containsDataScheme(b []byte) bool {
	for i := 0; ; i++ {
		k := bytes.IndexByte(b[i:], ':')
		if k < 0 {
			return false
		}
		i += k
		if i >= 4 && string(b[i-4:i]) == "data" {
			return true
		}
	}
}

// maskValue masks a string value, eliding inlined base64 data.
func (m *Masker) maskValue(s string) string {
	return m.maskValueWith(s, nil)
}

// maskValueWith is maskValue with the features of s already counted (or
// nil).
func (m *Masker) maskValueWith(s string, f *features) string {
	if len(s) > 256 && strings.HasPrefix(s, "data:") {
		if k := strings.Index(s[:min(len(s), 256)], ";base64,"); k > 0 && !strings.HasPrefix(s[k+len(";base64,"):], "[ELIDED ") {
			return m.mask(s[:k+len(";base64,")]) + "[ELIDED " + itoa(len(s)-k-len(";base64,")) + " bytes]"
		}
	}
	return m.maskWith(s, f)
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

// decodeJSONString decodes a string token of valid JSON. Unpaired
// surrogates become U+FFFD, as encoding/json does.
func decodeJSONString(tok []byte) string {
	body := tok[1 : len(tok)-1]
	k := bytes.IndexByte(body, '\\')
	if k < 0 {
		return string(body)
	}
	out := make([]byte, 0, len(body))
	out = append(out, body[:k]...)
	for i := k; i < len(body); {
		if body[i] != '\\' {
			// Copy up to the next escape in one go: prose has one every
			// few hundred bytes (issue 15).
			n := bytes.IndexByte(body[i:], '\\')
			if n < 0 {
				n = len(body) - i
			}
			out = append(out, body[i:i+n]...)
			i += n
			continue
		}
		i++
		switch body[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(body[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
					r2 = hex4(body[i+3 : i+7])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, body[i])
		}
		i++
	}
	return string(out)
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at raw[i] (raw is
// valid JSON, i at the value's first byte).
func skipValue(raw []byte, i int) int {
	switch raw[i] {
	case '"':
		return stringEnd(raw, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(raw); j++ {
			switch raw[j] {
			case '"':
				j = stringEnd(raw, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		panic("BUG: unbalanced valid JSON")
	}
	j := i
	for j < len(raw) && strings.IndexByte(",}] \t\r\n", raw[j]) < 0 {
		j++
	}
	return j
}

// objectField returns the value of key in the top-level object of the
// valid JSON document raw, or nil.
func objectField(raw []byte, key string) []byte {
	var v [1][]byte
	objectFields(raw, []string{key}, v[:])
	return v[0]
}

// objectFields sets vals[k] to the value of keys[k] (its first occurrence)
// in the top-level object of the valid JSON document raw, nil when absent,
// in one pass. It reports whether raw is an object.
func objectFields(raw []byte, keys []string, vals [][]byte) bool {
	clear(vals)
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return false
	}
	left := len(keys)
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] == '"' && left > 0 {
		e := stringEnd(raw, i)
		tok := raw[i:e]
		i = skipSpace(raw, e)
		i = skipSpace(raw, i+1) // past ':'
		ve := skipValue(raw, i)
		for k, key := range keys {
			if vals[k] == nil && keyIs(tok, key) {
				vals[k] = raw[i:ve]
				left--
				break
			}
		}
		i = skipSpace(raw, ve)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return true
}

// keyIs reports whether the string token tok decodes to key.
func keyIs(tok []byte, key string) bool {
	body := tok[1 : len(tok)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body) == key
	}
	return decodeJSONString(tok) == key
}
