package schema

import (
	"strings"
	"testing"
)

// BenchmarkRefusalsMessage judges a 2 KB answer that is no refusal
// against the built-in phrases (copied here: schema does not import
// configs).
//
//	go test ./schema -run '^$' -bench RefusalsMessage -benchmem
func BenchmarkRefusalsMessage(b *testing.B) {
	r := NewRefusals([]string{"I'm sorry, but I can't", "I cannot help with", "I can't assist with", "I'm unable to provide", "As an AI language model, I can't"})
	content := strings.Repeat("Your order 12345 from 2026-11-24 shipped on Thursday via the regional carrier; the tracking page at https://shop.example/track/12345 updates once a day. ", 14)
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1733220000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"` + content + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":80,"completion_tokens":420,"total_tokens":500}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if r.Message(body) {
			b.Fatal("refusal")
		}
	}
}
