// Package jsonscan checks JSON text in one pass without recursion, so that
// input of any shape (a body of a million '[') costs a loop, never a stack
// frame per nesting level. Everything in Cairn that hands untrusted bytes
// to a recursive reader (gjson validation, encoding/json decoding into
// values, the JSON Schema compiler and validator) checks them here first.
package jsonscan

// MaxDepth is encoding/json's nesting limit: json.Valid refuses deeper
// documents, and so does Valid.
const MaxDepth = 10000

// Result is what Check found.
type Result uint8

const (
	// OK: exactly one JSON value with optional surrounding whitespace,
	// nested no deeper than the limit.
	OK Result = iota
	// Invalid: not JSON (Offset says where the scan stopped).
	Invalid
	// TooDeep: objects and arrays nest deeper than the limit; the scan
	// stops at the first container past it, so this is cheap whatever
	// follows.
	TooDeep
	// InvalidUTF8: a string holds bytes that are not UTF-8 (CheckUTF8
	// only; Offset is the string's).
	InvalidUTF8
)

// Valid reports whether s is exactly one JSON value with optional
// surrounding whitespace: the same answer as json.Valid (same grammar, same
// nesting limit, bytes >= 0x80 in strings accepted whatever their UTF-8),
// several times faster and without allocating for ordinary depths.
func Valid[T ~string | ~[]byte](s T) bool {
	r, _ := Check(s, MaxDepth)
	return r == OK
}

// Check scans s as one JSON value nested at most maxDepth objects and
// arrays deep (maxDepth < 1 means MaxDepth). It returns the result and,
// for Invalid and TooDeep, the offset at which the scan stopped. It never
// recurses and allocates only for depths above 256.
func Check[T ~string | ~[]byte](s T, maxDepth int) (Result, int) {
	return check(s, maxDepth, false)
}

// CheckUTF8 is Check that also requires the strings to be valid UTF-8
// (the only place valid JSON can hold bytes >= 0x80), so that a request
// body is checked in one pass instead of utf8.Valid and then Check (issue
// 15). It returns InvalidUTF8 for a string that is not.
func CheckUTF8[T ~string | ~[]byte](s T, maxDepth int) (Result, int) {
	return check(s, maxDepth, true)
}

func check[T ~string | ~[]byte](s T, maxDepth int, strict bool) (Result, int) {
	if maxDepth < 1 {
		maxDepth = MaxDepth
	}
	var small [4]uint64
	objects := small[:] // bit d: the container at depth d+1 is an object
	depth := 0
	i := skipSpace(s, 0)
	for {
		// A value starts at i.
		if i >= len(s) {
			return Invalid, i
		}
		switch c := s[i]; c {
		case '{', '[':
			if depth == maxDepth {
				return TooDeep, i
			}
			w, bit := depth/64, uint64(1)<<(depth%64)
			if w == len(objects) {
				objects = append(objects, 0)
			}
			depth++
			j := skipSpace(s, i+1)
			if c == '{' {
				objects[w] |= bit
				if j < len(s) && s[j] == '}' {
					depth--
					i = j + 1
					break
				}
				if i = objectKey(s, j, strict); i < 0 {
					return invalidAt(i, j)
				}
				continue
			}
			objects[w] &^= bit
			i = j
			if i < len(s) && s[i] == ']' {
				depth--
				i++
				break
			}
			continue
		case '"':
			j := validStringUTF8(s, i, strict)
			if j < 0 {
				return invalidAt(j, i)
			}
			i = j
		case 't':
			if !hasPrefixAt(s, i, "true") {
				return Invalid, i
			}
			i += 4
		case 'f':
			if !hasPrefixAt(s, i, "false") {
				return Invalid, i
			}
			i += 5
		case 'n':
			if !hasPrefixAt(s, i, "null") {
				return Invalid, i
			}
			i += 4
		default:
			j := validNumber(s, i)
			if j < 0 {
				return Invalid, i
			}
			i = j
		}
		// After a value: close containers until a ',' or the end.
		for {
			i = skipSpace(s, i)
			if depth == 0 {
				if i == len(s) {
					return OK, 0
				}
				return Invalid, i
			}
			if i >= len(s) {
				return Invalid, i
			}
			d := depth - 1
			inObject := objects[d/64]&(uint64(1)<<(d%64)) != 0
			switch s[i] {
			case ',':
				j := skipSpace(s, i+1)
				i = j
				if inObject {
					if i = objectKey(s, j, strict); i < 0 {
						return invalidAt(i, j)
					}
				}
			case '}':
				if !inObject {
					return Invalid, i
				}
				depth--
				i++
				continue
			case ']':
				if inObject {
					return Invalid, i
				}
				depth--
				i++
				continue
			default:
				return Invalid, i
			}
			break
		}
	}
}

// objectKey parses `"key" :` at i and returns the index of the value after
// the colon's whitespace, or -1.
func objectKey[T ~string | ~[]byte](s T, i int, strict bool) int {
	if i >= len(s) || s[i] != '"' {
		return -1
	}
	if i = validStringUTF8(s, i, strict); i < 0 {
		return i
	}
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != ':' {
		return -1
	}
	return skipSpace(s, i+1)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

func skipSpace[T ~string | ~[]byte](s T, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

func hasPrefixAt[T ~string | ~[]byte](s T, i int, p string) bool {
	if len(s)-i < len(p) {
		return false
	}
	for k := 0; k < len(p); k++ {
		if s[i+k] != p[k] {
			return false
		}
	}
	return true
}

// plainStringByte marks the bytes a JSON string holds as they are.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 0x100; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// validString returns the index past the string token starting at s[i]
// (a '"'), or -1 if it is not a valid JSON string.
func validString[T ~string | ~[]byte](s T, i int) int {
	return validStringUTF8(s, i, false)
}

// validStringUTF8 is validString; with strict, bytes >= 0x80 must also
// form valid UTF-8 (it returns -2 when they do not).
func validStringUTF8[T ~string | ~[]byte](s T, i int, strict bool) int {
	for j := i + 1; j < len(s); j++ {
		// Eight plain ASCII bytes at a time (issue 15: this loop is most of
		// what a large request costs to check), then byte by byte.
		for {
			for j+8 <= len(s) && !specialWord(load64(s, j)) {
				j += 8
			}
			if j >= len(s) || !plainStringByte[s[j]] {
				break
			}
			if s[j] >= 0x80 && strict {
				n := utf8Seq(s, j)
				if n < 0 {
					return -2
				}
				j += n
			} else {
				j++
			}
		}
		if j >= len(s) {
			break
		}
		switch s[j] {
		case '"':
			return j + 1
		case '\\':
			j++
			if j >= len(s) {
				return -1
			}
			switch s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(s)-j < 5 {
					return -1
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(s[k]) {
						return -1
					}
				}
				j += 4
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
	return -1
}

// validNumber returns the index past the number starting at s[i], or -1.
func validNumber[T ~string | ~[]byte](s T, i int) int {
	if s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s) || !isDigit(s[i]):
		return -1
	case s[i] == '0':
		i++
	default:
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return -1
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return -1
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// load64 reads s[j:j+8] as a little-endian word (the compiler turns this
// into one load).
func load64[T ~string | ~[]byte](s T, j int) uint64 {
	_ = s[j+7]
	return uint64(s[j]) | uint64(s[j+1])<<8 | uint64(s[j+2])<<16 | uint64(s[j+3])<<24 |
		uint64(s[j+4])<<32 | uint64(s[j+5])<<40 | uint64(s[j+6])<<48 | uint64(s[j+7])<<56
}

// specialWord reports whether any byte of w is '"', '\\', a control
// character or >= 0x80: the bytes a string scan must look at one by one.
func specialWord(w uint64) bool {
	q := w ^ (lsb * '"')
	b := w ^ (lsb * '\\')
	return ((q-lsb)&^q|(b-lsb)&^b|(w-lsb*0x20)|w)&msb != 0
}

// utf8Seq returns the length of the valid UTF-8 sequence starting at s[j]
// (a byte >= 0x80), or -1.
func utf8Seq[T ~string | ~[]byte](s T, j int) int {
	c := s[j]
	var n int
	lo, hi := byte(0x80), byte(0xBF) // bounds of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		n = 2
	case c == 0xE0:
		n, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		n = 3
	case c == 0xED:
		n, hi = 3, 0x9F
	case c == 0xF0:
		n, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		n = 4
	case c == 0xF4:
		n, hi = 4, 0x8F
	default:
		return -1
	}
	if j+n > len(s) || s[j+1] < lo || s[j+1] > hi {
		return -1
	}
	for k := j + 2; k < j+n; k++ {
		if s[k] < 0x80 || s[k] > 0xBF {
			return -1
		}
	}
	return n
}

// invalidAt is the result for a scan that failed with code (-1: grammar,
// -2: UTF-8) at offset i.
func invalidAt(code, i int) (Result, int) {
	if code == -2 {
		return InvalidUTF8, i
	}
	return Invalid, i
}
