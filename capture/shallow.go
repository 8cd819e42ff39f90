package capture

import "encoding/json"

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
			// Skip the string: an escaped quote is preceded by an odd
			// number of backslashes.
			for i++; i < len(b); i++ {
				if b[i] == '\\' {
					i++
					continue
				}
				if b[i] == '"' {
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
