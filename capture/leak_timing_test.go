package capture

import (
	"strings"
	"testing"
)

// BenchmarkLeaks times the PII-in-answer check of one response that holds
// no personal data: the common path, settled by the feature pre-scan.
//
//	go test ./capture -run '^$' -bench Leaks -benchmem
func BenchmarkLeaks(b *testing.B) {
	m := testMasker(b)
	p := "Your order 12345 from 2026-11-24 shipped on Thursday via the regional carrier; the tracking page at https://shop.example/track/12345 updates once a day. " +
		"Parcels in transit for more than 7 days are treated as lost: you can ask for a refund of $49.99 or a free replacement, whichever you prefer. "
	for _, c := range []struct {
		name    string
		content string
	}{{"short", "Your refund is on its way."}, {"2KB", strings.Repeat(p, 7)}} {
		b.Run(c.name, func(b *testing.B) {
			raw := &RawBodies{RequestBody: []byte(`{"model":"m","messages":[{"role":"user","content":"Where is order 12345?"}]}`), ResponseBody: chatBody(c.content)}
			b.SetBytes(int64(len(raw.ResponseBody)))
			b.ReportAllocs()
			for b.Loop() {
				if m.Leaks("chat.completions", 200, raw) != nil {
					b.Fatal("leak")
				}
			}
		})
	}
}
