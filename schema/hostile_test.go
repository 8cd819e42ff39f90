package schema

import (
	"strings"
	"testing"
)

// TestDuplicateKeysRefused: every object the gateway reads is refused when
// it repeats a key, naming the key's path (issue 12.10: the gateway and the
// upstream could read different values).
func TestDuplicateKeysRefused(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct{ name, body, param string }{
		{"include_usage", `{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":false,"include_usage":true}}`, "stream_options.include_usage"},
		{"model", `{"model":"m","model":"n",` + msgs + `}`, "model"},
		{"stream", `{"model":"m",` + msgs + `,"stream":false,"stream":true}`, "stream"},
		{"response_format", `{"model":"m",` + msgs + `,"response_format":{"type":"text"},"response_format":{"type":"json_object"}}`, "response_format"},
		{"response_format.type", `{"model":"m",` + msgs + `,"response_format":{"type":"text","type":"json_object"}}`, "response_format.type"},
		{"json_schema.schema", `{"model":"m",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{},"schema":{"type":"object"}}}}`, "response_format.json_schema.schema"},
		{"escaped key", `{"model":"m",` + msgs + `,"response_format":{"type":"text","t\u0079pe":"json_object"}}`, "response_format.type"},
		{"tools", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"g"}}],"tools":[{"type":"function","function":{"name":"f"}}]}`, "tools"},
		{"tool type", `{"model":"m",` + msgs + `,"tools":[{"type":"function","type":"custom","function":{"name":"f"}}]}`, "tools[0].type"},
		{"tool function name", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","name":"g"}}]}`, "tools[0].function.name"},
		{"tool parameters", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{},"parameters":{"type":"object"}}}]}`, "tools[0].function.parameters"},
		{"tool_choice", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f","name":"g"}}}`, "tool_choice.function.name"},
		{"message role", `{"model":"m","messages":[{"role":"user","role":"system","content":"hi"}]}`, "messages[0].role"},
		{"message content", `{"model":"m","messages":[{"role":"user","content":"a \"quoted\" one","content":"b"}]}`, "messages[0].content"},
		{"content part", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]}`, "messages[0].content[0].text"},
		{"many keys", `{"model":"m","messages":[{"role":"user","content":"x",` + manyKeys(20) + `,"ka0":1}]}`, "messages[0].ka0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseChatRequest([]byte(tt.body))
			re, ok := err.(*RequestError)
			if !ok || re.Param != tt.param || !strings.Contains(re.Message, "duplicate key") {
				t.Fatalf("ParseChatRequest(%s) = %v; want a duplicate key error with param %q", tt.body, err, tt.param)
			}
		})
	}
	// Inside a schema the error names the schema and the key's path in it.
	c := NewContracts(8)
	for _, body := range []string{
		`{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","type":"number"}}}}}]}`,
		`{"model":"m",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","required":["a"],"required":[]}}}}`,
	} {
		req, err := ParseChatRequest([]byte(body))
		if err != nil {
			t.Fatalf("ParseChatRequest: %v", err)
		}
		_, err = c.Prepare(nil, &req)
		if re, ok := err.(*RequestError); !ok || !strings.Contains(re.Message, "duplicate key") {
			t.Errorf("Prepare(%s) = %v; want a duplicate key error", body, err)
		}
	}
	// Distinct keys that share a prefix, and repeated keys in objects the
	// gateway does not read, pass.
	for _, body := range []string{
		`{"model":"m",` + msgs + `,"metadata":{"a":1,"a":2},"stream_options":{"include_usage":true,"include_usage_x":false},"stream":true}`,
		`{"model":"m","messages":[{"role":"user","content":"x",` + manyKeys(40) + `}]}`,
	} {
		if _, err := ParseChatRequest([]byte(body)); err != nil {
			t.Errorf("ParseChatRequest(%.80s) = %v; want no error", body, err)
		}
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('0'+i/26)) + `":` + `{"v":[1,"}"]}`)
	}
	return b.String()
}
