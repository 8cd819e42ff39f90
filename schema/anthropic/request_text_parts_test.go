package anthropic

import (
	"encoding/json"
	"testing"
)

// TestRequestNonStringTextPart: a text part whose text is not a string
// (in a tool or assistant message) is a ParamError naming it, not a
// Messages request that is not JSON.
func TestRequestNonStringTextPart(t *testing.T) {
	for _, c := range []struct{ body, param string }{
		{`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"c","content":[{"type":"text"}]}]}`, "messages[1].content[0].text"},
		{`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"text","text":5}]}]}`, "messages[1].content[0].text"},
	} {
		out, perr := AppendRequest(nil, []byte(c.body), RequestOptions{MaxTokens: 10})
		if perr == nil {
			t.Errorf("%s: translated to %s (valid JSON: %v); want a ParamError naming %s", c.body, out, json.Valid(out), c.param)
			continue
		}
		if perr.Param != c.param {
			t.Errorf("%s: param %q; want %q", c.body, perr.Param, c.param)
		}
	}
}
