package anthropic

import "github.com/cairnhq/cairn/internal/jsonscan"

// rawField returns the raw JSON text of key's value in obj, a valid JSON
// object, without unescaping anything (gjson unescapes a string value it
// returns, which allocates when the text holds an escape: every streamed
// text with a newline or a quote does). ok is false when obj has no such
// key at its top level. Keys are compared as written: the keys looked up
// here never hold escapes. jsonscan's member scanner reads the object.
func rawField(obj, key string) (raw string, ok bool) {
	jsonscan.EachMember(obj, 0, func(k string, vs, ve int) bool {
		if k[1:len(k)-1] != key {
			return true
		}
		raw, ok = obj[vs:ve], true
		return false
	})
	return raw, ok
}
