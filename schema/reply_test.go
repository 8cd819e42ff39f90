package schema

import (
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		id       string
		usage    Usage
		hasUsage bool
		choice   bool
	}{
		{"typical", `{"id":"chatcmpl-1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
			"chatcmpl-1", Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}, true, true},
		{"total missing", `{"usage":{"prompt_tokens":3,"completion_tokens":2}}`, "", Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}, true, false},
		{"first of repeated keys", `{"id":"a","id":"b","usage":{"total_tokens":1},"usage":{"total_tokens":9}}`, "a", Usage{TotalTokens: 1}, true, false},
		{"escaped id", `{"id":"x\"y"}`, `x"y`, Usage{}, false, false},
		{"id not a string", `{"id":7,"usage":null}`, "", Usage{}, false, false},
		{"id too long", `{"id":"` + longID + `"}`, "", Usage{}, false, false},
		{"empty choices", `{"choices":[]}`, "", Usage{}, false, false},
		{"not an object", `[{"id":"a"}]`, "", Usage{}, false, false},
		{"truncated", `{"id":"a","choices":[{"message":`, "a", Usage{}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.body)
			r := ReadReply(b)
			if got := r.ID(b); got != tt.id {
				t.Errorf("ReadReply(%s).ID = %q; want %q", tt.body, got, tt.id)
			}
			if r.Usage != tt.usage || r.HasUsage != tt.hasUsage {
				t.Errorf("ReadReply(%s).Usage = %+v, %v; want %+v, %v", tt.body, r.Usage, r.HasUsage, tt.usage, tt.hasUsage)
			}
			if got := r.choiceEnd > r.choiceStart; got != tt.choice {
				t.Errorf("ReadReply(%s) found choices[0] = %v; want %v", tt.body, got, tt.choice)
			}
			// ReadUsage, the stand-alone reader, agrees.
			if u, ok := ReadUsage(b); u != tt.usage || ok != tt.hasUsage {
				t.Errorf("ReadUsage(%s) = %+v, %v; ReadReply says %+v, %v", tt.body, u, ok, tt.usage, tt.hasUsage)
			}
		})
	}
}

var longID = strings.Repeat("a", 257)

// TestCheckReplyJSONObjectScan: the scan-only path for a json_object
// contract gives the decoder's verdicts.
func TestCheckReplyJSONObjectScan(t *testing.T) {
	req, err := ParseChatRequest(chatBody(`"response_format":{"type":"json_object"}`))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := NewContracts(8).Prepare(nil, &req)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		content string
		want    string // "" = pass
	}{
		{`{"a":1}`, ""},
		{`  {"a":[1,{"b":null}]}  `, ""},
		{`[1]`, "content: expected a JSON object, got array"},
		{`"x"`, "content: expected a JSON object, got string"},
		{`{"a":1} {"b":2}`, "content: more than one JSON value"},
		{`{"a":1`, "content: invalid JSON at offset 6 (unexpected end)"},
		{"```json\n{\"a\":1}\n```", "content: JSON wrapped in a markdown code fence"},
		{`Sure! {"a":1}`, "content: text around JSON"},
		{``, "content: empty, expected JSON"},
	}
	for _, tt := range tests {
		body := reply{content: str(tt.content)}.body()
		v := ct.CheckMessage(body)
		got := ""
		if v.Result != ResultPass {
			if len(v.Reasons) > 0 {
				got = v.Reasons[0]
			} else {
				got = v.Result
			}
		}
		if got != tt.want {
			t.Errorf("CheckMessage(content %q) = %q; want %q", tt.content, got, tt.want)
		}
	}
}
