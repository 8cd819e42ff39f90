package schema

import (
	"sync"
	"unicode/utf8"

	"github.com/cairnhq/cairn/internal/jsonscan"
)

// fastVerdict is what the direct validator decided.
type fastVerdict uint8

const (
	fastFail    fastVerdict = iota // the library fails it too
	fastPass                       // the library passes it too
	fastUnknown                    // left to the library
)

// Bounds on one direct validation. The instance nests at most
// MaxValueDepth levels (the caller checked it with jsonscan), but a
// schema's $ref, allOf, anyOf and oneOf apply subschemas to the same
// value; a chain of them longer than maxFastDepth, or more than
// maxFastSteps subschema applications in all, is left to the library,
// which detects loops and does the same work.
const (
	maxFastDepth = 512
	maxFastSteps = 1 << 20
)

// fastRun is the scratch state of one validation, pooled.
type fastRun struct {
	fs      *fastSchema
	s       string
	buf     []byte   // the current string's value, when it has escapes
	keys    []string // member names of the objects being checked, a stack
	kbuf    []byte   // escaped member names' values, a stack
	table   []int32  // duplicate-name detection
	steps   int
	depth   int
	unknown bool
}

var fastRunPool = sync.Pool{New: func() any { return new(fastRun) }}

// check validates b, exactly one valid JSON value without surrounding
// whitespace, nested no deeper than MaxValueDepth (jsonscan.Check said
// OK). It allocates nothing in steady state.
func (fs *fastSchema) check(b []byte) (v fastVerdict) {
	if len(b) == 0 {
		return fastUnknown
	}
	r := fastRunPool.Get().(*fastRun)
	defer func() {
		if recover() != nil { // a bug here must not crash the gateway: the library decides
			v = fastUnknown
		}
		clear(r.keys[:cap(r.keys)])
		r.fs, r.s, r.keys, r.kbuf, r.buf = nil, "", r.keys[:0], r.kbuf[:0], r.buf[:0]
		r.steps, r.depth, r.unknown = 0, 0, false
		if cap(r.buf) > 64<<10 || cap(r.kbuf) > 64<<10 || cap(r.keys) > 4096 || cap(r.table) > 1<<14 {
			return // do not keep a hostile reply's scratch alive
		}
		fastRunPool.Put(r)
	}()
	r.fs, r.s = fs, b2s(b)
	ok := r.valid(0, 0, len(b))
	switch {
	case r.unknown:
		return fastUnknown
	case ok:
		return fastPass
	}
	return fastFail
}

func valueKind(c byte) uint8 {
	switch c {
	case '{':
		return kObject
	case '[':
		return kArray
	case '"':
		return kString
	case 't', 'f':
		return kBoolean
	case 'n':
		return kNull
	}
	return kNumber
}

// valid reports whether r.s[vs:ve], one JSON value, is valid against node
// id. It sets r.unknown (and returns false) when it cannot decide. It
// visits what the library visits: it returns early only on a failed type,
// evaluates every keyword and every branch of allOf and anyOf, and oneOf's
// up to a second match.
func (r *fastRun) valid(id int32, vs, ve int) bool {
	r.steps++
	if r.steps > maxFastSteps || r.depth >= maxFastDepth {
		r.unknown = true
		return false
	}
	r.depth++
	ok := r.validNode(&r.fs.nodes[id], vs, ve)
	r.depth--
	return ok
}

func (r *fastRun) validNode(n *fnode, vs, ve int) bool {
	switch n.always {
	case 1:
		return true
	case -1:
		return false
	}
	kind := valueKind(r.s[vs])
	var num decimal
	numState := 0 // 0: not parsed, 1: parsed, -1: beyond the exact range
	number := func() bool {
		if numState == 0 {
			numState = -1
			if parseDecimal(r.s[vs:ve], &num) {
				numState = 1
			}
		}
		if numState < 0 {
			r.unknown = true
			return false
		}
		return true
	}
	if len(n.types) > 0 {
		matched := false
		for _, t := range n.types {
			if t == kind {
				matched = true
				break
			}
			if t == kInteger && kind == kNumber {
				if !number() {
					return false
				}
				if num.isInt() {
					matched = true
					break
				}
			}
		}
		if !matched {
			return false
		}
	}

	// After the type, the library evaluates every keyword, even past a
	// failure: a failing branch of a oneOf may still reach a number
	// big.Rat cannot parse, or a loop, whose panic fails the whole
	// validation. So does this walk, so that it passes only what the
	// library passes.
	ok := true
	var str string
	if kind == kString && n.needStr {
		str = r.str(r.s[vs:ve])
	}
	if kind == kNumber && n.needNum && !number() {
		return false
	}
	if n.cnst != nil && !r.equal(n.cnst, kind, vs, str, &num) {
		ok = false
	}
	if len(n.enum) > 0 {
		matched := false
		for i := range n.enum {
			if r.equal(&n.enum[i], kind, vs, str, &num) {
				matched = true
				break
			}
		}
		if !matched {
			ok = false
		}
	}

	switch kind {
	case kObject:
		if n.objectKw && !r.object(n, vs, ve) {
			ok = false
		}
	case kArray:
		if n.arrayKw && !r.array(n, vs, ve) {
			ok = false
		}
	case kString:
		if n.minLen >= 0 || n.maxLen >= 0 {
			l := utf8.RuneCountInString(str)
			if n.minLen >= 0 && l < n.minLen || n.maxLen >= 0 && l > n.maxLen {
				ok = false
			}
		}
		if n.pattern != nil && !n.pattern.MatchString(str) {
			ok = false
		}
	case kNumber:
		if n.min != nil && cmpDecimal(&num, n.min) < 0 ||
			n.exMin != nil && cmpDecimal(&num, n.exMin) <= 0 ||
			n.max != nil && cmpDecimal(&num, n.max) > 0 ||
			n.exMax != nil && cmpDecimal(&num, n.exMax) >= 0 {
			ok = false
		}
		if n.multipleOf != nil {
			yes, sure := num.multipleOf(n.multipleOf)
			if !sure {
				r.unknown = true
				return false
			}
			if !yes {
				ok = false
			}
		}
	}
	if r.unknown {
		return false
	}

	if n.ref >= 0 && !r.valid(n.ref, vs, ve) {
		ok = false
	}
	for _, c := range n.allOf {
		if !r.valid(c, vs, ve) {
			ok = false
		}
	}
	if len(n.anyOf) > 0 {
		matched := false
		for _, c := range n.anyOf {
			if r.valid(c, vs, ve) {
				matched = true
			}
		}
		if !matched {
			ok = false
		}
	}
	if len(n.oneOf) > 0 {
		matched := 0
		for _, c := range n.oneOf { // up to a second match, as the library
			if r.valid(c, vs, ve) {
				if matched++; matched > 1 {
					break
				}
			}
		}
		if matched != 1 {
			ok = false
		}
	}
	return ok && !r.unknown
}

// equal compares the instance (of kind kind at vs; str its string value
// when a string, num its number when a number and needed) with c, as the
// library's equals does for scalars.
func (r *fastRun) equal(c *fconst, kind uint8, vs int, str string, num *decimal) bool {
	if c.kind != kind {
		return false
	}
	switch kind {
	case kNull:
		return true
	case kBoolean:
		return (r.s[vs] == 't') == c.b
	case kString:
		return str == c.s
	case kNumber:
		return cmpDecimal(num, &c.num) == 0
	}
	return false
}

// str returns the value of the string token raw (quotes included) as the
// library sees it after decodeValid: escapes decoded, a lone surrogate or
// a byte that is not UTF-8 replaced by U+FFFD. The result aliases the
// instance or r.buf, valid until the next call.
func (r *fastRun) str(raw string) string {
	inner := raw[1 : len(raw)-1]
	if !hasBackslash(inner) && utf8.ValidString(inner) {
		return inner
	}
	r.buf = appendStringValue(r.buf[:0], raw)
	return b2s(r.buf)
}

func hasBackslash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			return true
		}
	}
	return false
}

// appendStringValue appends the value of the string token raw as
// valueDecoder.str decodes it.
func appendStringValue(dst []byte, raw string) []byte {
	start := len(dst)
	dst = appendUnquote(dst, raw)
	if utf8.Valid(dst[start:]) {
		return dst
	}
	// Replace each byte that is not UTF-8, in place from a copy.
	bad := append([]byte(nil), dst[start:]...)
	dst = dst[:start]
	for b := bad; len(b) > 0; {
		c, n := utf8.DecodeRune(b)
		if c == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, b[:n]...)
		}
		b = b[n:]
	}
	return dst
}

// object checks properties, required and additionalProperties. A name
// that occurs twice (the decoder keeps the last value) is left to the
// library.
func (r *fastRun) object(n *fnode, vs, ve int) bool {
	s := r.s
	base, kmark := len(r.keys), len(r.kbuf)
	defer func() {
		clear(r.keys[base:])
		r.keys, r.kbuf = r.keys[:base], r.kbuf[:kmark]
	}()
	ok := true
	i := skipSpaceS(s, vs+1)
	if s[i] != '}' {
		for {
			ke := stringEndS(s, i)
			name := r.key(s[i:ke])
			r.keys = append(r.keys, name)
			i = skipSpaceS(s, skipSpaceS(s, ke)+1)
			end := jsonscan.SkipValue(s, i)
			if end < 0 {
				r.unknown = true
				return false
			}
			if c, declared := n.props[name]; declared {
				if !r.valid(c, i, end) {
					ok = false
				}
			} else {
				switch n.addl {
				case addlFalse:
					ok = false
				case addlSchema:
					if !r.valid(n.addlNode, i, end) {
						ok = false
					}
				}
			}
			if r.unknown {
				return false
			}
			i = skipSpaceS(s, end)
			if s[i] == '}' {
				break
			}
			i = skipSpaceS(s, i+1)
		}
	}
	names := r.keys[base:]
	if r.duplicate(names) {
		r.unknown = true
		return false
	}
	for _, req := range n.required {
		found := false
		for _, name := range names {
			if name == req {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return ok
}

// key returns the name the raw key token stands for (see str); escaped
// names are kept on r.kbuf until their object is done.
func (r *fastRun) key(raw string) string {
	inner := raw[1 : len(raw)-1]
	if !hasBackslash(inner) && utf8.ValidString(inner) {
		return inner
	}
	start := len(r.kbuf)
	r.kbuf = appendStringValue(r.kbuf, raw)
	return b2s(r.kbuf[start:])
}

// duplicate reports whether a name occurs twice in names.
func (r *fastRun) duplicate(names []string) bool {
	if len(names) <= 16 {
		for i := 1; i < len(names); i++ {
			for j := range i {
				if names[i] == names[j] {
					return true
				}
			}
		}
		return false
	}
	size := 32
	for size < 2*len(names) {
		size *= 2
	}
	if cap(r.table) < size {
		r.table = make([]int32, size)
	}
	t := r.table[:size]
	for i := range t {
		t[i] = -1
	}
	mask := uint64(size - 1)
	for i, name := range names {
		h := uint64(14695981039346656037)
		for k := 0; k < len(name); k++ {
			h = (h ^ uint64(name[k])) * 1099511628211
		}
		for p := h & mask; ; p = (p + 1) & mask {
			if t[p] < 0 {
				t[p] = int32(i)
				break
			}
			if names[t[p]] == name {
				return true
			}
		}
	}
	return false
}

// array checks items, prefixItems, additionalItems and the item counts,
// as the library does for each draft's form of items.
func (r *fastRun) array(n *fnode, vs, ve int) bool {
	s := r.s
	ok := true
	count := 0
	legacy := true // legacy items still apply to the next item
	i := skipSpaceS(s, vs+1)
	if s[i] != ']' {
		for {
			end := jsonscan.SkipValue(s, i)
			if end < 0 {
				r.unknown = true
				return false
			}
			if n.itemsAll >= 0 {
				if !r.valid(n.itemsAll, i, end) {
					ok = false
				}
			} else if n.itemsTuple != nil && legacy {
				switch {
				case count < len(n.itemsTuple):
					if !r.valid(n.itemsTuple[count], i, end) {
						ok = false
					}
				case n.addItems == addlSchema:
					if !r.valid(n.addItemsN, i, end) {
						ok = false
					}
				default:
					legacy = false
				}
			}
			switch {
			case count < len(n.prefix):
				if !r.valid(n.prefix[count], i, end) {
					ok = false
				}
			case n.items2020 >= 0:
				if !r.valid(n.items2020, i, end) {
					ok = false
				}
			}
			if r.unknown {
				return false
			}
			count++
			i = skipSpaceS(s, end)
			if s[i] == ']' {
				break
			}
			i = skipSpaceS(s, i+1)
		}
	}
	if n.itemsTuple != nil && n.addItems == addlFalse && count > len(n.itemsTuple) {
		ok = false
	}
	if n.minItems >= 0 && count < n.minItems || n.maxItems >= 0 && count > n.maxItems {
		ok = false
	}
	return ok
}
