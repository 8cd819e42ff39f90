package capture

// maxJSONDepth is encoding/json's nesting limit: json.Valid refuses
// deeper documents, and so does validJSON.
const maxJSONDepth = 10000

// validJSON reports whether s is exactly one JSON value with optional
// surrounding whitespace: the same answer as json.Valid (same grammar, same
// nesting limit, bytes >= 0x80 in strings accepted whatever their UTF-8),
// several times faster and without allocating for ordinary depths.
func validJSON[T ~string | ~[]byte](s T) bool {
	var small [4]uint64
	objects := small[:] // bit d: the container at depth d+1 is an object
	depth := 0
	i := skipSpaceIn(s, 0)
	for {
		// A value starts at i.
		if i >= len(s) {
			return false
		}
		switch c := s[i]; c {
		case '{', '[':
			if depth == maxJSONDepth {
				return false
			}
			w, bit := depth/64, uint64(1)<<(depth%64)
			if w == len(objects) {
				objects = append(objects, 0)
			}
			depth++
			i = skipSpaceIn(s, i+1)
			if c == '{' {
				objects[w] |= bit
				if i < len(s) && s[i] == '}' {
					depth--
					i++
					break
				}
				if i = objectKey(s, i); i < 0 {
					return false
				}
				continue
			}
			objects[w] &^= bit
			if i < len(s) && s[i] == ']' {
				depth--
				i++
				break
			}
			continue
		case '"':
			if i = validString(s, i); i < 0 {
				return false
			}
		case 't':
			if !hasPrefixAt(s, i, "true") {
				return false
			}
			i += 4
		case 'f':
			if !hasPrefixAt(s, i, "false") {
				return false
			}
			i += 5
		case 'n':
			if !hasPrefixAt(s, i, "null") {
				return false
			}
			i += 4
		default:
			if i = validNumber(s, i); i < 0 {
				return false
			}
		}
		// After a value: close containers until a ',' or the end.
		for {
			i = skipSpaceIn(s, i)
			if depth == 0 {
				return i == len(s)
			}
			if i >= len(s) {
				return false
			}
			d := depth - 1
			inObject := objects[d/64]&(uint64(1)<<(d%64)) != 0
			switch s[i] {
			case ',':
				i = skipSpaceIn(s, i+1)
				if inObject {
					if i = objectKey(s, i); i < 0 {
						return false
					}
				}
			case '}':
				if !inObject {
					return false
				}
				depth--
				i++
				continue
			case ']':
				if inObject {
					return false
				}
				depth--
				i++
				continue
			default:
				return false
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
	i = skipSpaceIn(s, i)
	if i >= len(s) || s[i] != ':' {
		return -1
	}
	return skipSpaceIn(s, i+1)
}

func skipSpaceIn[T ~string | ~[]byte](s T, i int) int {
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
