package schema

import (
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// FuzzRewriteResponses: whatever body ParseResponsesRequest accepts, the
// rewrite with a model and a prompt parses again, names the new model, and
// its instructions are the prompt followed by the client's (never lost).
func FuzzRewriteResponses(f *testing.F) {
	for _, s := range []string{
		`{"model":"a","input":"x"}`,
		`{"model":"a","input":"x","instructions":"c"}`,
		` { "instructions" : null , "model":"a" }`,
		`{"input":[{"role":"user","content":[{"type":"input_text","text":"\u00e9"}]}],"model":"a","instructions":"\"q\"\n"}`,
		`{"model":"a","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"f"},"text":{"format":{"type":"json_schema","name":"n","schema":{}}}}`,
	} {
		f.Add([]byte(s), "m", "P")
	}
	f.Fuzz(func(t *testing.T, body []byte, model, prompt string) {
		r, err := ParseResponsesRequest(body)
		if err != nil {
			return
		}
		client := gjson.GetBytes(body, "instructions")
		out, err := r.RewriteResponses(nil, body, model, prompt)
		if err != nil {
			t.Fatalf("RewriteResponses: %v", err)
		}
		if model == "" && prompt == "" {
			if string(out) != string(body) {
				t.Fatalf("no edit changed the body")
			}
			return
		}
		if !gjson.ValidBytes(out) {
			t.Fatalf("rewritten body is not JSON: %q", out)
		}
		if got := gjson.GetBytes(out, "model").Str; model != "" && utf8.ValidString(model) && got != model {
			t.Fatalf("model = %q; want %q", got, model)
		}
		if prompt != "" && utf8.ValidString(prompt) && utf8.ValidString(client.Str) {
			got := gjson.GetBytes(out, "instructions").Str
			want := prompt
			if client.Type == gjson.String {
				want = prompt + "\n\n" + client.Str
			}
			if got != want {
				t.Fatalf("instructions = %q; want %q", got, want)
			}
		}
	})
}
