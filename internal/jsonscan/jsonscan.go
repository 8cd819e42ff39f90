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
				if i = objectKey(s, j); i < 0 {
					return Invalid, j
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
			j := validString(s, i)
			if j < 0 {
				return Invalid, i
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
					if i = objectKey(s, j); i < 0 {
						return Invalid, j
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
func objectKey[T ~string | ~[]byte](s T, i int) int {
	if i >= len(s) || s[i] != '"' {
		return -1
	}
	if i = validString(s, i); i < 0 {
		return -1
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
	for j := i + 1; j < len(s); j++ {
		for j < len(s) && plainStringByte[s[j]] {
			j++
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
