package capture

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkSecretsRedact measures the secret scan on a typical 2 KB chat
// response with no secret in it (the hot path: no allocation) and with 8
// or 64 configured secrets.
func BenchmarkSecretsRedact(b *testing.B) {
	body := []byte(`{"id":"chatcmpl-abc","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat(`Sure, I can help with the refund of order 12345. Sk-stores ship fast.\n`, 28) +
		`"},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":300,"total_tokens":420}}`)
	for _, n := range []int{8, 64} {
		var vals []string
		for i := range n {
			vals = append(vals, fmt.Sprintf("sk-proj-%032d", i), fmt.Sprintf("gw-key-%d-abcdefgh", i))
		}
		s := NewSecrets(vals[:n]...)
		b.Run(fmt.Sprintf("secrets=%d/clean", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if out := s.Redact(body); len(out) != len(body) {
					b.Fatal("changed")
				}
			}
		})
		leaky := append([]byte(nil), body...)
		leaky = append(leaky[:200:200], append([]byte(vals[0]), body[200:]...)...)
		b.Run(fmt.Sprintf("secrets=%d/one-hit", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(leaky)))
			for b.Loop() {
				if out := s.Redact(leaky); len(out) == len(leaky) {
					b.Fatal("missed")
				}
			}
		})
	}
}
