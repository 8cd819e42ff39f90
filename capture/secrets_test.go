package capture

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/cairnhq/cairn/configs"
)

const testProviderKey = "sk-proj-Zq9/x+Ab\"c\\d-0123456789"

// jsonForms returns the ways a JSON encoder may write s inside a string.
func jsonForms(s string) []string {
	std, _ := json.Marshal(s)
	var allU, slashU strings.Builder
	for _, u := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&allU, "\\u%04x", u)
	}
	for _, r := range s {
		switch r {
		case '/':
			slashU.WriteString(`\/`)
		case '"':
			slashU.WriteString(`\u0022`)
		case '\\':
			slashU.WriteString(`\u005C`)
		case 'k':
			slashU.WriteString(`\u006B`)
		default:
			slashU.WriteRune(r)
		}
	}
	return []string{string(std[1 : len(std)-1]), allU.String(), slashU.String()}
}

func TestSecretsRedact(t *testing.T) {
	s := NewSecrets(testProviderKey, "gw-checkout-key-1", "short", "héllo-wörld-🔑-secret")
	if s.Len() != 3 {
		t.Fatalf("Len = %d; want 3 (the 5-byte value is ignored)", s.Len())
	}
	cases := []string{
		"plain " + testProviderKey + " end",
		"gw-checkout-key-1",
		"xgw-checkout-key-1y", // inside a word: still the exact secret
	}
	for _, f := range jsonForms(testProviderKey) {
		cases = append(cases, `{"error":{"message":"bad key `+f+`"}}`)
	}
	for _, f := range jsonForms("héllo-wörld-🔑-secret") {
		cases = append(cases, `{"content":"`+f+`"}`)
	}
	for _, in := range cases {
		out := string(s.Redact([]byte(in)))
		if !strings.Contains(out, PlaceholderSecret) {
			t.Errorf("Redact(%q) = %q; want the secret replaced", in, out)
		}
		if strings.Contains(out, "0123456789") || strings.Contains(out, "checkout") || strings.Contains(out, "wörld") || strings.Contains(out, "w\\u00f6rld") {
			t.Errorf("Redact(%q) = %q; a part of the secret is left", in, out)
		}
		if strings.HasPrefix(in, "{") && !json.Valid([]byte(out)) {
			t.Errorf("Redact(%q) = %q; not valid JSON any more", in, out)
		}
		if got := s.String(in); got != out {
			t.Errorf("String(%q) = %q; want %q", in, got, out)
		}
	}
	for _, in := range []string{"", "nothing here", "short short", "sk-proj-Zq9/x+Ab", `\u0073k-`, `gw-checkout-key-`, `\`, `\u12`, `\ud83d`} {
		b := []byte(in)
		out := s.Redact(b)
		if string(out) != in || (len(b) > 0 && &out[0] != &b[0]) {
			t.Errorf("Redact(%q) = %q; want the same slice back", in, out)
		}
	}
}

func TestSecretsOfConfig(t *testing.T) {
	c := &configs.Config{
		AdminToken: "admin-token-123456",
		RedisURL:   "redis://user:redis-pass-9876@127.0.0.1:6379/0",
		Providers: []configs.Provider{{Name: "a", APIKey: "sk-provider-key-abcdef", Headers: map[string]string{
			"api-key": "azure-key-0000000", "anthropic-version": "2023-06-01"}}},
		Keys:   []configs.Key{{Name: "k", Secret: "gateway-key-55555"}},
		Notify: configs.Notify{Webhooks: []configs.Webhook{{URL: "https://h.example", Headers: map[string]string{"Authorization": "Bearer hook-token-777777"}}}},
	}
	s := SecretsOf(c)
	for _, v := range []string{"admin-token-123456", "redis-pass-9876", "sk-provider-key-abcdef", "azure-key-0000000", "gateway-key-55555", "hook-token-777777", "Bearer hook-token-777777"} {
		if !s.ContainsString("x " + v + " y") {
			t.Errorf("SecretsOf misses %q", v)
		}
	}
	if s.ContainsString("2023-06-01") {
		t.Errorf("SecretsOf treats the anthropic-version header as a secret")
	}
	var r Redactor
	r.Add(s)
	r.Add(NewSecrets("new-key-after-reload"))
	if r.String("admin-token-123456 new-key-after-reload") != PlaceholderSecret+" "+PlaceholderSecret {
		t.Errorf("Redactor lost secrets across Add: %q", r.String("admin-token-123456 new-key-after-reload"))
	}
}

func FuzzSecretsRedact(f *testing.F) {
	f.Add([]byte(`{"a":"sk-proj-Zq9\/x+Ab\"c\\d-0123456789"}`))
	f.Add([]byte(`\u0073\u006b-proj-Zq9/x+Ab"c\d-0123456789`))
	f.Add([]byte(`\\\\\u\ud800\udc00`))
	s := NewSecrets(testProviderKey, "gw-checkout-key-1")
	f.Fuzz(func(t *testing.T, b []byte) {
		out := s.Redact(b)
		if s.Contains(out) {
			t.Fatalf("Redact(%q) = %q still holds a secret", b, out)
		}
		if json.Valid(b) && !json.Valid(out) && !strings.ContainsAny(string(b), `"`) {
			t.Fatalf("Redact broke JSON: %q -> %q", b, out)
		}
	})
}
