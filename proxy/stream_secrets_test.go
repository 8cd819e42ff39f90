package proxy

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/capture"
)

func contentChunk(c string) []byte {
	return []byte(`{"id":"s","choices":[{"index":0,"delta":{"content":` + string(appendQuoted(c)) + `},"finish_reason":null}]}`)
}

func toolChunk(args string) []byte {
	return []byte(`{"id":"s","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":` + string(appendQuoted(args)) + `}}]},"finish_reason":null}]}`)
}

func appendQuoted(s string) []byte {
	b := []byte{'"'}
	for _, r := range s {
		if r == '"' || r == '\\' {
			b = append(b, '\\')
		}
		b = append(b, string(r)...)
	}
	return append(b, '"')
}

// Issue 12.4: a secret cut across two (or more) content chunks is never
// sent in pieces; ordinary text is not held.
func TestSplitGuard(t *testing.T) {
	const key = "sk-proj-LEAK0123456789abcdef"
	for _, tt := range []struct {
		name   string
		chunks []string
		want   string // the content the client reads, joined
	}{
		{"whole", []string{"a " + key + " b"}, "a [SECRET] b"},
		{"two", []string{"key: sk-pr", "oj-LEAK0123456789abcdef done"}, "key: [SECRET] done"},
		{"many", []string{"x sk-", "proj-", "LEAK01", "23456789", "abcdef!"}, "x [SECRET]!"},
		{"two-byte head", []string{"x sk", "-proj-LEAK0123456789abcdef y"}, "x sk[SECRET] y"},
		{"false start", []string{"ask-proj-", "ect plan", " ok"}, "ask-proj-ect plan ok"},
		{"ordinary", []string{"Hello", " sky", " is blue"}, "Hello sky is blue"},
		{"tool arguments", []string{"tool:{\"k\":\"sk-pro", "tool:j-LEAK0123456789abcdef\"}"}, `{"k":"[SECRET]"}`},
		{"content then tool", []string{"see sk-pro", "tool:j-LEAK0123456789abcdef"}, "see sk-proj-LEAK0123456789abcdef"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &splitGuard{s: capture.NewSecrets(key)}
			var got strings.Builder
			var pieces []string
			emit := func(evs [][]byte) {
				for _, e := range evs {
					c := gjson.GetBytes(e, "choices.0.delta.content").String()
					if c == "" {
						c = gjson.GetBytes(e, toolArgsPath).String()
					}
					pieces = append(pieces, c)
					got.WriteString(c)
				}
			}
			for _, c := range tt.chunks {
				if args, ok := strings.CutPrefix(c, "tool:"); ok {
					emit(g.add(nil, toolChunk(args)))
					continue
				}
				emit(g.add(nil, contentChunk(c)))
			}
			emit(g.release(nil))
			if got.String() != tt.want {
				t.Errorf("client reads %q; want %q", got.String(), tt.want)
			}
			for _, p := range pieces {
				if !strings.Contains(tt.want, capture.PlaceholderSecret) {
					break // no secret in this stream
				}
				for n := 4; n <= len(key); n++ {
					if strings.Contains(p, key[:n]) && n > 2 {
						t.Errorf("an event carries %q, the first %d bytes of the key", p, n)
						break
					}
				}
			}
			if len(pieces) != len(tt.chunks) {
				t.Errorf("%d events out for %d in; want one for one", len(pieces), len(tt.chunks))
			}
		})
	}
}
