package schema

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParseLarge parses (and, as the proxy does for a routed model,
// rewrites) chat requests of 64 KB and 1 MB: the request path's cost per
// byte (issue 15):
//
//	go test ./schema -run '^$' -bench ParseLarge -count 6
func BenchmarkParseLarge(b *testing.B) {
	for _, n := range []int{64 << 10, 1 << 20} {
		body := largeChatBody(n)
		b.Run(fmt.Sprintf("parse/%dKB", n>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				sinkReq, _ = ParseChatRequest(body)
			}
		})
		b.Run(fmt.Sprintf("parse+rewrite/%dKB", n>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			dst := make([]byte, 0, len(body)+256)
			for b.Loop() {
				r, _ := ParseChatRequest(body)
				sinkBytes, _ = r.Rewrite(dst[:0], body, "gpt-4o-mini", "", false)
			}
		})
	}
}

// largeChatBody is typicalChatBody with a user message of plain words (and
// a few non-ASCII letters) padding it to about n bytes.
func largeChatBody(n int) []byte {
	body := typicalChatBody()
	const words = "the parcel left the depot and is on its way to the customer — who asked about délivery options and refunds "
	pad := strings.Repeat(words, n/len(words)+1)[:max(n-len(body)-40, 0)]
	for !utf8ValidEnd(pad) {
		pad = pad[:len(pad)-1]
	}
	const at = `"messages":[`
	i := bytes.Index(body, []byte(at)) + len(at)
	out := append([]byte(nil), body[:i]...)
	out = append(out, `{"role":"user","content":"`...)
	out = append(out, pad...)
	out = append(out, `"},`...)
	return append(out, body[i:]...)
}

func utf8ValidEnd(s string) bool { return len(s) == 0 || s[len(s)-1] < 0x80 }
