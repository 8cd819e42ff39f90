package schema

import (
	"slices"
	"unicode/utf8"

	"github.com/cairnhq/cairn/internal/jsonscan"
)

// fastArgs reports whether a tool call's arguments pass checkTools'
// checks of their value without decoding them: one JSON object, nested no
// deeper than MaxValueDepth, not a wrapper of the real arguments (see
// wrapper), and valid against the function's parameters by their direct
// validator. False means "take the decoding path", which decides and
// names the reasons.
func fastArgs(args []byte, d *toolDef) bool {
	if d.fast == nil {
		return false
	}
	t := trimSpace(args)
	if len(t) == 0 || t[0] != '{' {
		return false
	}
	if res, _ := jsonscan.Check(t, MaxValueDepth); res != jsonscan.OK {
		return false
	}
	if !notWrapper(b2s(t), d) {
		return false
	}
	return d.fast.check(t) == fastPass
}

// notWrapper reports whether wrapper would find nothing in the object s:
// it has three or more distinct names, or its one or two members are not
// the shapes wrapper recognises. Anything it cannot tell without decoding
// (escaped or repeated names, a string value that might hold JSON) makes
// it answer false, and the decoding path decides.
func notWrapper(s string, d *toolDef) bool {
	var names [2]string
	var values [2]string
	n := 0
	i := skipSpaceS(s, 1)
	if s[i] == '}' {
		return true
	}
	for {
		ke := stringEndS(s, i)
		name := s[i+1 : ke-1]
		if hasBackslash(name) || !utf8.ValidString(name) {
			return false // the decoded name differs from the raw one
		}
		i = skipSpaceS(s, skipSpaceS(s, ke)+1)
		end := jsonscan.SkipValue(s, i)
		if end < 0 {
			return false
		}
		switch {
		case slices.Contains(names[:n], name):
			return false // repeated: the decoder keeps the last
		case n == 2:
			return true // three distinct names: never a wrapper
		}
		names[n], values[n] = name, s[i:end]
		n++
		i = skipSpaceS(s, end)
		if s[i] == '}' {
			break
		}
		i = skipSpaceS(s, i+1)
	}
	// nested is wrapper's test, answering "maybe" for any string that
	// holds a '{', a '[' or an escape (\u007b is a '{'): looksLikeJSON
	// would need it decoded.
	nested := func(v string) (yes, sure bool) {
		switch v[0] {
		case '{':
			return true, true
		case '"':
			for k := 1; k < len(v); k++ {
				if v[k] == '{' || v[k] == '[' || v[k] == '\\' {
					return false, false
				}
			}
		}
		return false, true
	}
	switch n {
	case 1:
		yes, sure := nested(values[0])
		if !sure {
			return false
		}
		if !yes || declaresProperty(d.params, names[0]) {
			return true
		}
		return names[0] != d.name && !slices.Contains(wrapperKeys[:], names[0])
	case 2:
		nameAt := slices.Index(names[:], "name")
		if nameAt < 0 || values[nameAt][0] != '"' || declaresProperty(d.params, "name") {
			return true
		}
		for _, k := range [...]string{"arguments", "parameters"} {
			j := slices.Index(names[:], k)
			if j < 0 {
				continue
			}
			yes, sure := nested(values[j])
			if !sure {
				return false
			}
			if yes && !declaresProperty(d.params, k) {
				return false
			}
		}
	}
	return true
}
