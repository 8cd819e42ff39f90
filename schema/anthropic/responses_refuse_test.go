package anthropic

import "testing"

// TestResponsesRefuse: what the Messages API cannot express is a
// ParamError naming the parameter, never dropped.
func TestResponsesRefuse(t *testing.T) {
	for _, c := range []struct{ body, param string }{
		{`{"model":"m","input":"hi","previous_response_id":"resp_1"}`, "previous_response_id"},
		{`{"model":"m","input":"hi","conversation":"conv_1"}`, "conversation"},
		{`{"model":"m","input":"hi","store":true}`, "store"},
		{`{"model":"m","input":"hi","background":true}`, "background"},
		{`{"model":"m","input":"hi","reasoning":{"effort":"low"}}`, "reasoning"},
		{`{"model":"m","input":"hi","include":["reasoning.encrypted_content"]}`, "include"},
		{`{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"x","schema":{}}}}`, "text.format"},
		{`{"model":"m","input":"hi","text":{"format":{"type":"json_object"}}}`, "text.format"},
		{`{"model":"m","input":"hi","tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{`{"model":"m","input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"web_search"}}`, "tool_choice"},
		{`{"model":"m","input":"hi","top_logprobs":2}`, "top_logprobs"},
		{`{"model":"m","input":[{"type":"reasoning","id":"rs_1","summary":[]}]}`, "input[0].type"},
		{`{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0].type"},
		{`{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, "input[0].content[0].type"},
		{`{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}`, "input[0].content[0].image_url"},
		{`{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0].call_id"},
		{`{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":5}]}`, "input[0].output"},
		{`{"model":"m","input":"hi","max_output_tokens":0}`, "max_output_tokens"},
		{`{"model":"m"}`, "input"},
		{`{"model":"m","input":[{"role":"system","content":"only a system prompt"}]}`, "input"},
	} {
		dst := []byte("keep")
		out, perr := AppendResponsesRequest(dst, []byte(c.body), RequestOptions{MaxTokens: 10})
		if perr == nil {
			t.Errorf("%s: translated to %s, want a ParamError naming %s", c.body, out, c.param)
			continue
		}
		if perr.Param != c.param {
			t.Errorf("%s: param %q (%s), want %q", c.body, perr.Param, perr.Message, c.param)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst changed to %q", c.body, out)
		}
	}
	// Defaults the SDK may send are accepted.
	for _, body := range []string{
		`{"model":"m","input":"hi","store":false,"background":false,"include":[],"truncation":"disabled","parallel_tool_calls":true,"metadata":{"a":"b"},"text":{"format":{"type":"text"},"verbosity":"medium"},"previous_response_id":null,"reasoning":null}`,
	} {
		if _, perr := AppendResponsesRequest(nil, []byte(body), RequestOptions{MaxTokens: 10}); perr != nil {
			t.Errorf("%s: %v", body, perr)
		}
	}
}
