package capture

import (
	"bytes"
	"encoding/json"
)

// maxRecordDepth bounds how deeply a body stored in a record nests. JSON
// readers recurse (Python's json module stops near 1,000 levels, many
// others earlier), so one deeply nested request must not make a capture
// file unreadable: a body nested deeper is kept as one JSON string holding
// its masked text (issue 12.9). Real chat and embeddings bodies nest fewer
// than ten levels; tool schemas a few more.
const maxRecordDepth = 32

// jsonDepth returns the deepest nesting of objects and arrays in b, which
// is valid JSON. It does not recurse.
func jsonDepth(b []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// Skip the string with IndexByte (masked bodies are mostly
			// long strings; issue 15): its closing quote is the first
			// one not escaped, that is, preceded by an even number of
			// backslashes.
			for i++; i < len(b); i++ {
				k := bytes.IndexByte(b[i:], '"')
				if k < 0 {
					return deepest
				}
				i += k
				bs := 0
				for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
					bs++
				}
				if bs%2 == 0 {
					break
				}
			}
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}

// shallow returns body unchanged when it nests at most maxRecordDepth
// levels, and otherwise body's text as one JSON string.
func shallow(body json.RawMessage) json.RawMessage {
	if len(body) <= 2*maxRecordDepth || jsonDepth(body) <= maxRecordDepth {
		return body
	}
	return appendJSONString(nil, string(body))
}
