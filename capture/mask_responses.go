package capture

import (
	"bytes"
	"encoding/json"
)

// responsesRequest returns the masked text of a /v1/responses request:
// {"instructions":…,"input":…} with every string inside masked, whichever
// shape input takes (a string, message items with string or part content,
// function_call_output items); the whole masked body when it has neither;
// nil when the body is empty. A body that is not JSON is masked as one
// string.
func (m *Masker) responsesRequest(body []byte) (out json.RawMessage) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	defer func() {
		if recover() != nil {
			out = append(json.RawMessage(nil), maskingFailedJSON...)
		}
	}()
	if !validJSON(body) {
		return appendJSONString(nil, m.maskValue(string(body)))
	}
	var v [2][]byte
	objectFields(body, []string{"instructions", "input"}, v[:])
	if v[0] == nil && v[1] == nil {
		return m.appendJSON(make([]byte, 0, len(body)), body, 0, true, true)
	}
	dst := make([]byte, 0, len(v[0])+len(v[1])+32)
	dst = append(dst, '{')
	if v[0] != nil {
		dst = append(dst, `"instructions":`...)
		dst = m.appendJSON(dst, v[0], 0, true, true)
	}
	if v[1] != nil {
		if v[0] != nil {
			dst = append(dst, ',')
		}
		dst = append(dst, `"input":`...)
		dst = m.appendJSON(dst, v[1], 0, true, true)
	}
	return append(dst, '}')
}
