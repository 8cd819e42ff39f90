package schema

import "testing"

// TestRequestRewriteMatches: Request.Rewrite, which edits at the spans
// ParseChatRequest recorded instead of parsing the body again (issue 15),
// writes exactly what RewriteRequest writes.
func TestRequestRewriteMatches(t *testing.T) {
	bodies := []string{
		`{"model":"route","messages":[{"role":"user","content":"hi"}]}`,
		"{\n  \"temperature\": 0.5,\n  \"model\" : \"route\" ,\n  \"messages\": [ {\"role\":\"user\",\"content\":\"x\"} ]\n}",
		` {"stream":true,"messages":[{"role":"user","content":"x"}],"model":"r"} `,
		`{"model":"r","stream":true,"stream_options":{},"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"r","stream":true,"stream_options":{"x":1},"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"r","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"r","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"r","stream":true,"stream_options":null,"messages":[{"role":"user","content":"x"}]}`,
		`{"mod\u0065l":"route","messages":[{"role":"user","content":"h\u00e9"}]}`,
		string(largeChatBody(8 << 10)),
	}
	edits := []struct {
		model, system string
		force         bool
	}{
		{"", "", false}, {"gpt-4o-mini", "", false}, {"", "Be brief.", false}, {"", "", true}, {"up\"x", "say \"hi\"", true},
	}
	for _, body := range bodies {
		r, err := ParseChatRequest([]byte(body))
		if err != nil {
			t.Fatalf("ParseChatRequest(%.60q): %v", body, err)
		}
		copied := []byte(body) // the proxy rewrites its owned copy
		for _, e := range edits {
			want, werr := RewriteRequest(nil, []byte(body), e.model, e.system, e.force)
			got, gerr := r.Rewrite(nil, copied, e.model, e.system, e.force)
			if string(got) != string(want) || (werr == nil) != (gerr == nil) {
				t.Errorf("Rewrite(%.60q, %+v) = %.80q, %v; RewriteRequest = %.80q, %v", body, e, got, gerr, want, werr)
			}
		}
	}
}
