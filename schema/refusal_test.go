package schema

import "testing"

func TestRefusalsMessage(t *testing.T) {
	r := NewRefusals([]string{"I'm sorry, but I can't", "I cannot help with"})
	for _, tt := range []struct {
		name, body string
		want       bool
	}{
		{"plain answer", `{"choices":[{"index":0,"message":{"role":"assistant","content":"Sure: the refund is on its way."},"finish_reason":"stop"}]}`, false},
		{"refusal field", `{"choices":[{"message":{"role":"assistant","content":null,"refusal":"I can't do that."},"finish_reason":"stop"}]}`, true},
		{"null refusal", `{"choices":[{"message":{"role":"assistant","content":"ok","refusal":null},"finish_reason":"stop"}]}`, false},
		{"content filter", `{"choices":[{"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}]}`, true},
		{"phrase", `{"choices":[{"message":{"content":"I'm sorry, but I can't help with that request."},"finish_reason":"stop"}]}`, true},
		{"phrase any case, white space", `{"choices":[{"message":{"content":"\n  i'M SORRY, BUT I CAN'T do it"}}]}`, true},
		{"typographic apostrophe", `{"choices":[{"message":{"content":"I’m sorry, but I can’t share that."}}]}`, true},
		{"escaped apostrophe", `{"choices":[{"message":{"content":"I\u2019m sorry, but I can\u2019t share that."}}]}`, true},
		{"phrase later in the answer", `{"choices":[{"message":{"content":"Here it is. I cannot help with more."}}]}`, false},
		{"content parts", `{"choices":[{"message":{"content":[{"type":"text","text":"I cannot help with that"}]}}]}`, true},
		{"pretty-printed", "{\n  \"choices\": [{\"message\": {\"content\": \"I cannot help with that\"}}]\n}", true},
		{"short content ends before a pattern could", `{"choices":[{"message":{"content":"I cannot"},"finish_reason":"stop"}]}`, false},
		{"not JSON", `oops`, false},
		{"no choices", `{"choices":[]}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Message([]byte(tt.body)); got != tt.want {
				t.Errorf("Message(%s) = %v; want %v", tt.body, got, tt.want)
			}
		})
	}
}

func TestRefusalsStream(t *testing.T) {
	r := NewRefusals([]string{"I cannot help with"})
	for _, tt := range []struct {
		name   string
		chunks []string
		want   bool
	}{
		{"answer", []string{`{"choices":[{"index":0,"delta":{"content":"Sure"}}]}`, `{"choices":[{"index":0,"delta":{"content":", here."},"finish_reason":"stop"}]}`}, false},
		{"phrase across chunks", []string{`{"choices":[{"index":0,"delta":{"content":"I can"}}]}`, `{"choices":[{"index":0,"delta":{"content":"not help with that"},"finish_reason":"stop"}]}`}, true},
		{"refusal delta", []string{`{"choices":[{"index":0,"delta":{"refusal":"No."}}]}`}, true},
		{"content filter", []string{`{"choices":[{"index":0,"delta":{"content":"Hm"},"finish_reason":"content_filter"}]}`}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var a StreamAccumulator
			for _, c := range tt.chunks {
				a.Add([]byte(c))
			}
			if got := r.Stream(&a); got != tt.want {
				t.Errorf("Stream = %v; want %v", got, tt.want)
			}
		})
	}
	var nilR *Refusals
	if nilR.Starts([]byte("I cannot help with")) {
		t.Error("nil Refusals matched")
	}
}
