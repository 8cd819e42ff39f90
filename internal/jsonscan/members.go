package jsonscan

// SkipValue returns the index just past the JSON value that starts at s[i]
// (after optional whitespace), or -1 when there is none. It finds the
// value's end without recursing and without allocating: strings are
// scanned with their escapes, containers by counting brackets outside
// strings. Inside containers it does not check the grammar (Check does);
// it is for reading spans out of a document, not for validating one.
func SkipValue[T ~string | ~[]byte](s T, i int) int {
	i = skipSpace(s, i)
	if i >= len(s) {
		return -1
	}
	switch s[i] {
	case '"':
		return skipString(s, i)
	case '{', '[':
		depth := 0
		for i < len(s) {
			switch s[i] {
			case '"':
				if i = skipString(s, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	// A literal or a number: its letters, digits and signs.
	j := i
	for j < len(s) && literalByte(s[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// skipString returns the index past the string starting at s[i] (a '"'),
// or -1 when it is not terminated. Escapes are skipped, not checked.
func skipString[T ~string | ~[]byte](s T, i int) int {
	for j := i + 1; j < len(s); j++ {
		for j+8 <= len(s) && !quoteOrBackslash(load64(s, j)) {
			j += 8
		}
		if j >= len(s) {
			break
		}
		switch s[j] {
		case '"':
			return j + 1
		case '\\':
			j++
		}
	}
	return -1
}

// EachMember calls fn for each member of the object that starts at s[i]
// (after optional whitespace) with the member's raw key token (quotes
// included, escapes as written) and the span s[vs:ve] of its raw value,
// until fn returns false. It returns the index past the object, or -1 when
// s holds no well-formed object there (fn may have been called for the
// members before the fault). It neither recurses nor allocates.
func EachMember[T ~string | ~[]byte](s T, i int, fn func(key T, vs, ve int) bool) int {
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != '{' {
		return -1
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return -1
		}
		ke := skipString(s, i)
		if ke < 0 {
			return -1
		}
		key := s[i:ke]
		i = skipSpace(s, ke)
		if i >= len(s) || s[i] != ':' {
			return -1
		}
		vs := skipSpace(s, i+1)
		ve := SkipValue(s, vs)
		if ve < 0 {
			return -1
		}
		if !fn(key, vs, ve) {
			return ve
		}
		i = skipSpace(s, ve)
		if i >= len(s) {
			return -1
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

// FirstElement returns the span s[vs:ve] of the first element of the
// array that starts at s[i] (after optional whitespace); ok is false when
// there is no array there or it is empty.
func FirstElement[T ~string | ~[]byte](s T, i int) (vs, ve int, ok bool) {
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != '[' {
		return 0, 0, false
	}
	vs = skipSpace(s, i+1)
	if vs >= len(s) || s[vs] == ']' {
		return 0, 0, false
	}
	ve = SkipValue(s, vs)
	return vs, ve, ve > vs
}

func literalByte(c byte) bool {
	return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '-' || c == '+' || c == '.'
}

// quoteOrBackslash reports whether any byte of w is '"' or '\\'.
func quoteOrBackslash(w uint64) bool {
	q := w ^ (lsb * '"')
	b := w ^ (lsb * '\\')
	return ((q-lsb)&^q|(b-lsb)&^b)&msb != 0
}
