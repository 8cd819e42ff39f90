package jsonscan

import (
	"math/bits"
	"strings"
	"unsafe"
)

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
// or -1 when it is not terminated. Escapes are skipped, not checked: a
// quote ends the string unless an odd run of backslashes precedes it,
// which is what reading each backslash as escaping the next byte gives.
// The next quote is looked for in the next 8 bytes at once and, when they
// hold none, with strings.IndexByte (vector instructions): prose runs at
// memory speed, and JSON text in a string (a quote every few bytes) costs
// no call per quote (issue 15: a 256 KB reply's members were read at
// ~0.5 GB/s).
func skipString[T ~string | ~[]byte](s T, i int) int {
	str := asString(s)
	for j := i + 1; j < len(str); {
		var q int
		if m := quoteMask(str, j); m != 0 {
			q = j + bits.TrailingZeros64(m)/8
		} else {
			from := j
			if j+8 <= len(str) {
				from = j + 8 // quoteMask saw no quote there
			}
			k := strings.IndexByte(str[from:], '"')
			if k < 0 {
				return -1
			}
			q = from + k
		}
		p := q - 1
		for p > i && str[p] == '\\' {
			p--
		}
		if (q-1-p)&1 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return -1
}

// quoteMask has the high bit of byte k set for the first '"' among
// str[j:j+8] (bits above it may be set too); 0 when there is none, or
// fewer than 8 bytes remain.
func quoteMask(str string, j int) uint64 {
	if j+8 > len(str) {
		return 0
	}
	w := uint64(str[j]) | uint64(str[j+1])<<8 | uint64(str[j+2])<<16 | uint64(str[j+3])<<24 |
		uint64(str[j+4])<<32 | uint64(str[j+5])<<40 | uint64(str[j+6])<<48 | uint64(str[j+7])<<56
	x := w ^ (lsb * '"')
	return (x - lsb) &^ x & msb
}

// asString views s as a string without copying: a string header is the
// first two words of a slice header. The view is only read, and only while
// s is.
func asString[T ~string | ~[]byte](s T) string {
	return *(*string)(unsafe.Pointer(&s))
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
