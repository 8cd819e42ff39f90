package capture

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzRedactMaskedSkipIsSound: whenever the second redaction pass skips
// the masked request, that request holds no secret.
func FuzzRedactMaskedSkipIsSound(f *testing.F) {
	const key = "sk-live-0123456789abcdef"
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"my key is ` + key + ` ok"}]}`,
		`{"messages":[{"role":"user","content":"sk-live-0123456789\u0061bcdef"}]}`,
		`{"messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"{\"k\":\"sk-live-0123456789\\u0061bcdef\"}"}}]}]}`,
		`{"messages":[{"role":"user","content":"sk-live- 0123456789abcdef 4111 1111 1111 1111"}]}`,
		`{"prompt":[4111111111111111, "sk-live-0123456789abcdef"]}`,
		`{"input":"` + strings.Repeat("x", 300) + `"}`, `not json sk-live-0123456789abcdef`, "{\"messages\":\"\u2028sk-live\"}",
		`{"messages":[{"content":"data:image/png;base64,` + strings.Repeat("QUJD", 100) + `"}]}`,
	} {
		f.Add([]byte(s), key)
		f.Add([]byte(s), "TRUNCATED")
		f.Add([]byte(s), "0123456789abcdef")
	}
	f.Add([]byte(`{"messages":"\nsk-live-0123456789abcdef \t\"x\" [\"a\"]"}`), "nsk-live-0123456789abcdef")
	f.Add([]byte(`{"messages":"{\"a\":\"\\nsk-live-0123456789abcdef\"}"}`), "nsk-live-0123456789abcdef")
	f.Add([]byte(`{"messages":["tsk-live", "0123456789abcdef"]}`), "tsk-live")
	m := testMasker(f)
	f.Fuzz(func(t *testing.T, body []byte, secret string) {
		s := NewSecrets(secret, "EMAIL-secret-1", "ghp_"+strings.Repeat("a", 36))
		if s.Len() == 0 {
			return
		}
		r := &Record{Endpoint: "chat.completions", Raw: &RawBodies{RequestBody: append([]byte(nil), body...), RequestValid: json.Valid(body)}}
		redactRecord(s, r)
		plain := plainRequest(r.Raw)
		m.maskRecord(r, true)
		if skipMaskedRequest(s, m, r, plain) && s.Contains(r.Request) {
			t.Fatalf("masked request %s holds a secret of %q, and the second pass would skip it", r.Request, secret)
		}
	})
}

// TestRedactMaskedStillRedactsUnescapedSecrets: a secret escaped twice
// in tool-call arguments, which only masking decodes, is still replaced
// (the second pass runs there), and a plain request is left to the first.
func TestRedactMaskedStillRedactsUnescapedSecrets(t *testing.T) {
	const key = "sk-live-0123456789abcdef"
	m := testMasker(t)
	s := NewSecrets(key)
	for _, c := range []struct {
		body string
		skip bool
	}{
		{`{"messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"{\"k\":\"sk-live-0123456789\\u0061bcdef\"}"}}]}]}`, false},
		{`{"messages":[{"role":"user","content":"key ` + key + ` and bob@example.com"}]}`, false}, // the first pass changed it
		{`{"messages":[{"role":"user","content":"no key, write to bob@example.com"}]}`, true},
		{`{"messages":[{"role":"user","content":"line\nno key and \"bob@example.com\"\n\tend sk-live-"}]}`, true},
		{`{"messages":[{"role":"user","content":"\u2028 key"}]}`, false},
	} {
		r := &Record{Endpoint: "chat.completions", Raw: &RawBodies{RequestBody: []byte(c.body), RequestValid: true}}
		redactRecord(s, r)
		plain := plainRequest(r.Raw)
		m.maskRecord(r, true)
		if got := skipMaskedRequest(s, m, r, plain); got != c.skip {
			t.Errorf("skipMaskedRequest(%s) = %v; want %v", c.body, got, c.skip)
		}
		redactMasked(s, m, r, plain)
		if s.Contains(r.Request) || strings.Contains(string(r.Request), "0123456789") {
			t.Errorf("record request %s holds the secret", r.Request)
		}
	}
}
