package schema

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRewriteRequest(t *testing.T) {
	tests := []struct {
		name, body, model, system string
		force                     bool
		want                      string
	}{
		{"nothing", `{"model":"a", "messages":[]}`, "", "", false, `{"model":"a", "messages":[]}`},
		{"model", `{"model":"route","messages":[{"role":"user","content":"hi"}]}`, "gpt-4o-mini", "", false,
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`},
		{"model keeps formatting", "{\n  \"temperature\": 0.5,\n  \"model\" : \"route\" ,\n  \"messages\": []\n}", "up", "", false,
			"{\n  \"temperature\": 0.5,\n  \"model\" : \"up\" ,\n  \"messages\": []\n}"},
		{"escaped model key", `{"mod\u0065l":"route","messages":[]}`, "up", "", false, `{"mod\u0065l":"up","messages":[]}`},
		{"model inserted", `{"messages":[]}`, "up", "", false, `{"model":"up","messages":[]}`},
		{"model escaped", `{"model":"r","messages":[]}`, "a\"b\\c\n\u2028", "", false, `{"model":"a\"b\\c\n\u2028","messages":[]}`},
		{"system first", `{"model":"r","messages":[{"role":"user","content":"hi"}]}`, "", "Be brief.", false,
			`{"model":"r","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]}`},
		{"system before the client's system", `{"model":"r","messages":[{"role":"system","content":"client"},{"role":"user","content":"hi"}]}`, "", "route", false,
			`{"model":"r","messages":[{"role":"system","content":"route"},{"role":"system","content":"client"},{"role":"user","content":"hi"}]}`},
		{"system into empty messages", `{"model":"r","messages":[ ]}`, "", "s", false, `{"model":"r","messages":[{"role":"system","content":"s"} ]}`},
		{"system escaped", `{"model":"r","messages":[]}`, "", "say \"hi\"\n\t<b>&\x01", false, `{"model":"r","messages":[{"role":"system","content":"say \"hi\"\n\t<b>&\u0001"}]}`},
		{"usage added", `{"model":"r","messages":[],"stream":true}`, "", "", true,
			`{"stream_options":{"include_usage":true},"model":"r","messages":[],"stream":true}`},
		{"usage into empty options", `{"model":"r","stream":true,"stream_options":{}}`, "", "", true,
			`{"model":"r","stream":true,"stream_options":{"include_usage":true}}`},
		{"usage into options", `{"model":"r","stream":true,"stream_options":{"x":1}}`, "", "", true,
			`{"model":"r","stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{"usage false to true", `{"model":"r","stream":true,"stream_options":{"include_usage":false}}`, "", "", true,
			`{"model":"r","stream":true,"stream_options":{"include_usage":true}}`},
		{"usage already true", `{"model":"r","stream":true,"stream_options":{"include_usage":true}}`, "", "", true,
			`{"model":"r","stream":true,"stream_options":{"include_usage":true}}`},
		{"usage null options", `{"model":"r","stream":true,"stream_options":null}`, "", "", true,
			`{"model":"r","stream":true,"stream_options":{"include_usage":true}}`},
		{"all three", ` {"stream":true,"messages":[{"role":"user","content":"x"}],"model":"r"} `, "up", "sys", true,
			` {"stream_options":{"include_usage":true},"stream":true,"messages":[{"role":"system","content":"sys"},{"role":"user","content":"x"}],"model":"up"} `},
		{"model and usage inserted", `{}`, "up", "", true, `{"model":"up","stream_options":{"include_usage":true}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("prefix:")
			got, err := RewriteRequest(dst, []byte(tt.body), tt.model, tt.system, tt.force)
			if err != nil {
				t.Fatalf("RewriteRequest(%q) = %v", tt.body, err)
			}
			if string(got) != "prefix:"+tt.want {
				t.Errorf("RewriteRequest(%q, %q, %q, %v) =\n%s\nwant\n%s", tt.body, tt.model, tt.system, tt.force, got[7:], tt.want)
			}
			if !json.Valid(got[7:]) {
				t.Errorf("RewriteRequest(%q) = %s: invalid JSON", tt.body, got[7:])
			}
			// Request.Rewrite, from the spans the parse found, on a copy of
			// the parsed body (as the proxy does), writes the same bytes.
			if r, err := ParseChatRequest([]byte(tt.body)); err == nil {
				got, err := r.Rewrite([]byte("prefix:"), []byte(tt.body), tt.model, tt.system, tt.force)
				if err != nil || string(got) != "prefix:"+tt.want {
					t.Errorf("Request.Rewrite(%q, %q, %q, %v) = %s, %v; want %s", tt.body, tt.model, tt.system, tt.force, got, err, tt.want)
				}
			}
		})
	}
}

func TestRewriteRequestSemantics(t *testing.T) {
	body := `{"model":"r","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"model":"x"}}}],"n":2}`
	got, err := RewriteRequest(nil, []byte(body), "up/model", "Ты — помощник", true)
	if err != nil {
		t.Fatal(err)
	}
	var in, out map[string]any
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &out); err != nil {
		t.Fatalf("RewriteRequest = %s: %v", got, err)
	}
	in["model"] = "up/model"
	in["messages"] = append([]any{map[string]any{"role": "system", "content": "Ты — помощник"}}, in["messages"].([]any)...)
	in["stream_options"] = map[string]any{"include_usage": true}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("RewriteRequest = %s; want %v", got, in)
	}
}

func TestRewriteRequestErrors(t *testing.T) {
	if _, err := RewriteRequest(nil, []byte(`[1]`), "m", "", false); err != ErrRewriteNotObject {
		t.Errorf("RewriteRequest([1]) = %v; want %v", err, ErrRewriteNotObject)
	}
	if _, err := RewriteRequest(nil, []byte(`{"model":"m","input":"x"}`), "", "sys", false); err != ErrRewriteMessages {
		t.Errorf("RewriteRequest(no messages, system) = %v; want %v", err, ErrRewriteMessages)
	}
}
