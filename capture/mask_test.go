package capture

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cairnhq/cairn/configs"
)

const testJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

func testMasker(t testing.TB) *Masker {
	t.Helper()
	return NewMasker(configs.Masking{Custom: []configs.CustomPattern{
		{Name: "kz_iin", Pattern: `\b\d{12}\b`, Re: regexp.MustCompile(`\b\d{12}\b`)},
		{Name: "ticket", Pattern: `TCK-[0-9]{5}`}, // Re left nil: compiled by NewMasker
	}})
}

func TestMaskerString(t *testing.T) {
	m := testMasker(t)
	tests := []struct {
		name, in, want string
	}{
		// email
		{"email", "write to bob.smith+tag@example.co.uk today", "write to [EMAIL] today"},
		{"email in mailto", "<mailto:alice@corp.example.com>", "<mailto:[EMAIL]>"},
		{"email end of sentence", "ask jo@x.io.", "ask [EMAIL]."},
		{"email two", "a@b.com,c@d.org", "[EMAIL],[EMAIL]"},
		{"email near-miss no tld", "user@localhost is fine", "user@localhost is fine"},
		{"email near-miss handle", "ping @alice on slack", "ping @alice on slack"},
		{"email near-miss numeric tld", "x@host.123", "x@host.123"},
		// phone
		{"phone e164", "call +14155550100 now", "call [PHONE] now"},
		{"phone intl grouped", "call +44 20 7946 0958.", "call [PHONE]."},
		{"phone intl dashes", "+1-415-555-0100", "[PHONE]"},
		{"phone nanp parens", "(415) 555-0100", "[PHONE]"},
		{"phone nanp dots", "tel 415.555.0100", "tel [PHONE]"},
		{"phone nanp with 1", "1 415 555 0100", "[PHONE]"},
		{"phone uk national", "ring 020 7946 0958", "ring [PHONE]"},
		{"phone fr national", "01 23 45 67 89", "[PHONE]"},
		{"phone near-miss bare digits", "order 4155550100", "order 4155550100"},
		{"phone near-miss timestamp", "ts=1732406400", "ts=1732406400"},
		{"phone near-miss date", "on 2026-11-24 at 12:30:45", "on 2026-11-24 at 12:30:45"},
		{"phone near-miss short intl", "+12 345", "+12 345"},
		{"phone near-miss money", "paid 1 000 000 USD", "paid 1 000 000 USD"},
		{"phone near-miss version", "v1.415.555.0100", "v1.415.555.0100"},
		// cards
		{"card visa", "card 4111 1111 1111 1111 exp", "card [CARD] exp"},
		{"card visa plain", "4111111111111111", "[CARD]"},
		{"card mastercard dashes", "5500-0000-0000-0004", "[CARD]"},
		{"card amex", "378282246310005", "[CARD]"},
		{"card 13 digits", "4222222222222", "[CARD]"},
		{"card then cvv", "4111 1111 1111 1111 123", "[CARD] 123"},
		{"card near-miss luhn", "4111 1111 1111 1112", "4111 1111 1111 1112"},
		{"card near-miss 16 digits", "id 1234567812345678", "id 1234567812345678"},
		{"card near-miss 20 digits", "41111111111111111111", "41111111111111111111"},
		// IBAN
		{"iban de spaced", "IBAN DE89 3704 0044 0532 0130 00 ok", "IBAN [IBAN] ok"},
		{"iban gb", "GB82WEST12345698765432", "[IBAN]"},
		{"iban no", "NO9386011117947", "[IBAN]"},
		{"iban fr", "FR1420041010050500013M02606", "[IBAN]"},
		{"iban lower", "de89370400440532013000", "[IBAN]"},
		{"iban near-miss checksum", "DE89 3704 0044 0532 0130 01", "DE89 3704 0044 0532 0130 01"},
		{"iban near-miss country", "ZZ89370400440532013000", "ZZ89370400440532013000"},
		// IP
		{"ipv4", "from 203.0.113.7 and 10.0.0.1.", "from [IPV4] and [IPV4]."},
		{"ipv4 port", "10.1.2.3:8080", "[IPV4]:8080"},
		{"ipv4 near-miss octet", "256.1.1.1", "256.1.1.1"},
		{"ipv4 near-miss version", "version 1.2.3.4.5", "version 1.2.3.4.5"},
		{"ipv4 near-miss three", "1.2.3", "1.2.3"},
		{"ipv6", "addr 2001:db8::8a2e:370:7334 up", "addr [IPV6] up"},
		{"ipv6 full", "2001:0db8:0000:0000:0000:ff00:0042:8329", "[IPV6]"},
		{"ipv6 link local", "fe80::1ff:fe23:4567:890a", "[IPV6]"},
		{"ipv6 bracketed", "[2001:db8::1]:443", "[[IPV6]]:443"},
		{"ipv6 near-miss time", "at 12:30:45", "at 12:30:45"},
		{"ipv6 near-miss cpp", "std::vector and Foo::bar", "std::vector and Foo::bar"},
		{"ipv6 near-miss mac", "00:1a:2b:3c:4d:5e", "00:1a:2b:3c:4d:5e"},
		// secrets
		{"openai key", "key sk-abcdefghijklmnopqrstuvwxyz0123456789 end", "key [SECRET] end"},
		{"openai project key", "sk-proj-AbCdEf0123456789_AbCdEf0123456789-xyz", "[SECRET]"},
		{"anthropic key", "sk-ant-api03-abcdefghijklmnopqrstuv", "[SECRET]"},
		{"aws key", "AKIAIOSFODNN7EXAMPLE", "[SECRET]"},
		{"aws near-miss short", "AKIA1234", "AKIA1234"},
		{"github pat classic", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"},
		{"github oauth", "gho_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"},
		{"github fine grained", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "[SECRET]"},
		{"slack", "xoxb-123456789012-abcdefghij", "[SECRET]"},
		{"google", "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", "[SECRET]"},
		{"stripe", "sk_live_abcdefghijklmnop1234", "[SECRET]"},
		{"bearer", "Authorization: Bearer abc123def456ghi789", "Authorization: Bearer [SECRET]"},
		{"bearer lower", "bearer tok_9f8e7d6c5b4a", "bearer [SECRET]"},
		{"bearer near-miss prose", "the bearer instrument is valid", "the bearer instrument is valid"},
		{"secret near-miss task", "task-abcdefghijklmnopqrstuvwxyz", "task-abcdefghijklmnopqrstuvwxyz"},
		{"secret near-miss short sk", "sk-short", "sk-short"},
		{"private key", "k=-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- done", "k=[SECRET] done"},
		{"private key truncated", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt", "[SECRET]"},
		{"public key near-miss", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"},
		// JWT
		{"jwt", "token " + testJWT + " ok", "token [JWT] ok"},
		{"jwt bearer", "Bearer " + testJWT, "Bearer [JWT]"},
		{"jwt near-miss", "eyJhbGciOi.x", "eyJhbGciOi.x"},
		// custom
		{"custom iin", "IIN 990101300123 ok", "IIN [KZ_IIN] ok"},
		{"custom nil re", "see TCK-12345", "see [TICKET]"},
		// mixed and plain
		{"plain", "Hello, how can I help you today?", "Hello, how can I help you today?"},
		{"unicode", "Привет bob@example.com ✓", "Привет [EMAIL] ✓"},
		{"placeholders kept", "[EMAIL] [CARD] [KZ_IIN]", "[EMAIL] [CARD] [KZ_IIN]"},
		{"mixed", "bob@x.com 4111111111111111 +14155550100 10.0.0.1", "[EMAIL] [CARD] [PHONE] [IPV4]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := m.String(tt.in)
			if got != tt.want {
				t.Errorf("String(%q) = %q; want %q", tt.in, got, tt.want)
			}
			if again := m.String(got); again != got {
				t.Errorf("String(%q) = %q; not idempotent, want %q", got, again, got)
			}
		})
	}
}

func TestMaskerCustomDoesNotRemaskPlaceholders(t *testing.T) {
	m := NewMasker(configs.Masking{Custom: []configs.CustomPattern{{Name: "word", Pattern: `[A-Z]+`}}})
	in := "bob@example.com and ABC"
	got := m.String(in)
	if want := "[EMAIL] and [WORD]"; got != want {
		t.Errorf("String(%q) = %q; want %q", in, got, want)
	}
	if again := m.String(got); again != got {
		t.Errorf("String(%q) = %q; want unchanged", got, again)
	}
}

func TestMaskerJSON(t *testing.T) {
	m := testMasker(t)
	tests := []struct {
		name, in, want string
	}{
		{"messages",
			`[{"role":"user","content":"I am bob@example.com"},{"role":"assistant","content":null}]`,
			`[{"role":"user","content":"I am [EMAIL]"},{"role":"assistant","content":null}]`},
		{"content parts",
			`[{"role":"user","content":[{"type":"text","text":"card 4111111111111111"},{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]`,
			`[{"role":"user","content":[{"type":"text","text":"card [CARD]"},{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]`},
		{"tool call arguments hold json",
			`{"tool_calls":[{"id":"call_1","function":{"name":"refund","arguments":"{\"email\":\"bob@example.com\",\"n\":1}"}}]}`,
			`{"tool_calls":[{"id":"call_1","function":{"name":"refund","arguments":"{\"email\":\"[EMAIL]\",\"n\":1}"}}]}`},
		{"escaped input", `{"a":"bob\u0040example.com\n"}`, `{"a":"[EMAIL]\n"}`},
		{"number card", `{"card":4111111111111111,"n":42,"f":-1.5e3}`, `{"card":"[CARD]","n":42,"f":-1.5e3}`},
		{"key kept", `{"email":"x"}`, `{"email":"x"}`},
		{"key masked when it is pii", `{"bob@example.com":1}`, `{"[EMAIL]":1}`},
		{"whitespace kept", "{ \"a\" : [ 1 , \"10.0.0.1\" ] }", "{ \"a\" : [ 1 , \"[IPV4]\" ] }"},
		{"scalar string", `"call +14155550100"`, `"call [PHONE]"`},
		{"invalid json", `{"a": "bob@example.com"`, `"{\"a\": \"[EMAIL]\""`},
		{"empty", ``, `""`},
		{"html not escaped", `{"a":"<b>&"}`, `{"a":"<b>&"}`},
		{"data url elided", `{"url":"data:image/png;base64,` + strings.Repeat("QUJD", 100) + `"}`,
			`{"url":"data:image/png;base64,[ELIDED 400 bytes]"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(m.JSON([]byte(tt.in)))
			if got != tt.want {
				t.Errorf("JSON(%q) = %s; want %s", tt.in, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("JSON(%q) = %s; not valid JSON", tt.in, got)
			}
			if again := string(m.JSON([]byte(got))); again != got {
				t.Errorf("JSON(%s) = %s; not idempotent", got, again)
			}
		})
	}
}

func TestMaskerLongStringTruncated(t *testing.T) {
	m := testMasker(t)
	in := strings.Repeat("é", maxMaskedString) // 2 MiB
	got := m.String(in)
	if len(got) > maxMaskedString+len(truncatedMark) || !strings.HasSuffix(got, truncatedMark) || !utf8.ValidString(got) {
		t.Errorf("String(2 MiB) = %d bytes ending %q; want ≤ %d bytes ending %q", len(got), got[len(got)-20:], maxMaskedString+len(truncatedMark), truncatedMark)
	}
	if again := m.String(got); again != got {
		t.Errorf("String(truncated) changed it again")
	}
}

// fuzzEmail finds plain emails the detector must catch.
var fuzzEmail = regexp.MustCompile(`\b[a-z0-9]{1,20}@[a-z0-9]{1,20}\.(?:com|org|net)\b`)

func FuzzMask(f *testing.F) {
	for _, s := range []string{
		"", "bob@example.com", "4111 1111 1111 1111", "+1 (415) 555-0100", "DE89 3704 0044 0532 0130 00",
		"[EMAIL]@x.com", "a@b.com4111111111111111", "Bearer " + testJWT, "fe80::1:2 10.0.0.1.2",
		"-----BEGIN PRIVATE KEY-----", "sk-" + strings.Repeat("a", 30) + "@x.com", "990101300123",
		"x.a@b.com-x", "(((((1", "0 00 00 00 00 00", "xa@b.coma@b.com",
	} {
		f.Add(s)
	}
	m := testMasker(f)
	f.Fuzz(func(t *testing.T, in string) {
		got := m.String(in)
		if again := m.String(got); again != got {
			t.Fatalf("String(%q) = %q, then %q; not idempotent", in, got, again)
		}
		inEmails := map[string]bool{}
		for _, e := range fuzzEmail.FindAllString(in, -1) {
			inEmails[e] = true
		}
		for _, e := range fuzzEmail.FindAllString(got, -1) {
			if inEmails[e] {
				t.Fatalf("String(%q) = %q; still holds %q", in, got, e)
			}
		}
	})
}

func FuzzMaskJSON(f *testing.F) {
	for _, s := range []string{
		`[{"role":"user","content":"bob@example.com"}]`, `{"a":"{\"b\":\"4111111111111111\"}"}`,
		`{"n":4111111111111111}`, `"\ud800"`, `{"a":`, `[[[[[]]]]]`, "\"\xff\"", `{"a":"[\"x@y.com\"]"}`,
		`{"k":"data:x;base64,[ELIDED 1 bytes]"}`,
	} {
		f.Add([]byte(s))
	}
	m := testMasker(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		got := m.JSON(in)
		if !json.Valid(got) {
			t.Fatalf("JSON(%q) = %q; not valid JSON", in, got)
		}
		if string(got) == `"`+PlaceholderMaskingFailed+`"` {
			t.Fatalf("JSON(%q) failed", in)
		}
		if again := m.JSON(got); string(again) != string(got) {
			t.Fatalf("JSON(%q) = %s, then %s; not idempotent", in, got, again)
		}
	})
}

func TestCustomPrefilter(t *testing.T) {
	tests := []struct {
		pattern string
		in      string
		want    bool // may match
	}{
		{`\b\d{12}\b`, "order 88412093 on 2026-11-02", false},
		{`\b\d{12}\b`, "iin 990101300123", true},
		{`TCK-[0-9]{5}`, "ticket 12345", false},
		{`TCK-[0-9]{5}`, "TCK-1234", false},
		{`TCK-[0-9]{5}`, "TCK-12345", true},
		{`(?i)tck-\d+`, "TcK-1", true},
		{`[A-Z]{2}\d+`, "ab1", false},
		{`[A-Z]{2}\d+`, "AB1", true},
		{`a|b`, "zzz", true}, // alternations add no condition
		{`x\d{0,3}y`, "xy", true},
		{`\d+\d+`, "12", true},
		{`(ab)+c`, "abc", true},
		{`(ab)+c`, "xyz", false},
	}
	for _, tt := range tests {
		re := regexp.MustCompile(tt.pattern)
		pf := newCustomPrefilter(re)
		if got := pf.maybe(tt.in); got != tt.want {
			t.Errorf("prefilter(%q).maybe(%q) = %v; want %v", tt.pattern, tt.in, got, tt.want)
		}
		if re.MatchString(tt.in) && !pf.maybe(tt.in) {
			t.Errorf("prefilter(%q) refused %q, which matches", tt.pattern, tt.in)
		}
	}
}

// FuzzCustomPrefilter checks the prefilter never refuses a string its
// pattern matches.
func FuzzCustomPrefilter(f *testing.F) {
	f.Add(`\b\d{12}\b`, "990101300123")
	f.Add(`TCK-[0-9]{5}`, "TCK-12345")
	f.Add(`(?i)[a-c]{2,}x+`, "ABxx")
	f.Add(`a{2}a{3}`, "aaaaa")
	f.Fuzz(func(t *testing.T, pattern, in string) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		if re.MatchString(in) && !newCustomPrefilter(re).maybe(in) {
			t.Fatalf("prefilter(%q) refused %q, which matches", pattern, in)
		}
	})
}

func FuzzDecodeJSONString(f *testing.F) {
	for _, s := range []string{`"a"`, `"\u00e9\n\"\\\/"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00x"`, `"\ud83d\u0041"`, "\"\xff\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		var want string
		if json.Unmarshal([]byte(tok), &want) != nil || len(tok) < 2 || tok[0] != '"' || stringEnd([]byte(tok), 0) != len(tok) {
			return
		}
		if got := decodeJSONString([]byte(tok)); got != want && utf8.ValidString(tok) {
			t.Fatalf("decodeJSONString(%q) = %q; want %q", tok, got, want)
		}
	})
}

func TestObjectField(t *testing.T) {
	doc := []byte(` { "model" : "m", "n\u0061me":{"a":[1,"}"]}, "messages" : [ {"role":"user"} ] , "x":null} `)
	tests := []struct{ key, want string }{
		{"model", `"m"`}, {"name", `{"a":[1,"}"]}`}, {"messages", `[ {"role":"user"} ]`}, {"x", "null"}, {"missing", ""},
	}
	for _, tt := range tests {
		if got := string(objectField(doc, tt.key)); got != tt.want {
			t.Errorf("objectField(%q) = %q; want %q", tt.key, got, tt.want)
		}
	}
	if got := objectField([]byte(`[1]`), "a"); got != nil {
		t.Errorf("objectField(array) = %q; want nil", got)
	}
}

// ungated returns a copy of m whose detectors all run on every string, to
// check that the feature gates never skip a detector that would match.
func ungated(m *Masker) *Masker {
	u := &Masker{kinds: map[string]bool{}}
	for _, d := range m.detectors {
		d.always = true
		u.add(d)
	}
	u.kinds = m.kinds
	return u
}

// gateSeeds are strings near each gate's edge.
var gateSeeds = []string{
	"bob@example.com", "4111 1111 1111 1111", "4111-1111-1111-1111", "+1 (415) 555-0100", "+44 20 7946 0958",
	"(415) 555-0100", "1 415 555 0100", "020 7946 0958", "01 23 45 67 89", "+(44) 20 7946 0958",
	"DE89 3704 0044 0532 0130 00", "NO9386011117947", "de89370400440532013000", "10.0.0.1", "a 203.0.113.7:80",
	"2001:db8::1", "fe80::1ff:fe23:4567:890a", "sk-abcdefghijklmnopqrstuvwxyz0123456789", "sk_live_abcdefghijklmnop1234",
	"rk_test_abcdefghijklmnop1234", "AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE", "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
	"ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gho_abcdefghijklmnopqrstuvwxyz0123456789",
	"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "xoxb-123456789012-abcdefghij", "xoxr-123456789012-abcdefghij",
	"Bearer abc123def456ghi789", "BEARER\tabc123def456ghi789", testJWT, "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
	"990101300123", "TCK-12345", "2026-11-02 88412093", "paid 129.99 EUR", "12:30:45", "v1.415.555.0100",
}

func FuzzFeatureGates(f *testing.F) {
	for _, s := range gateSeeds {
		f.Add(s)
		f.Add("x " + s + " y")
	}
	f.Add(`{"a":"sk\/-abcdefghijklmnopqrstuvwxyz0123456789","b":"x\"bob@example.com\n"}`)
	f.Add(`["4111\n1111 1111 1111","\bearer abc123def456","\\u0040"]`)
	m := testMasker(f)
	u := ungated(m)
	f.Fuzz(func(t *testing.T, in string) {
		ft := scanFeatures(in)
		anyMaybe := false
		for i := range m.detectors {
			anyMaybe = anyMaybe || m.detectors[i].maybe(&ft)
		}
		if m.mayMatch(&ft) != anyMaybe {
			t.Fatalf("mayMatch(%q) = %v; the detectors' gates say %v", in, !anyMaybe, anyMaybe)
		}
		if got, want := m.String(in), u.String(in); got != want {
			t.Fatalf("String(%q) = %q; ungated %q", in, got, want)
		}
		for _, doc := range [][]byte{appendJSONString(nil, in), []byte(in), appendJSONString(nil, string(appendJSONString(nil, in)))} {
			if got, want := m.JSON(doc), u.JSON(doc); string(got) != string(want) {
				t.Fatalf("JSON(%s) = %s; ungated %s", doc, got, want)
			}
		}
	})
}

func TestFeatureGatesOnCanaries(t *testing.T) {
	m := testMasker(t)
	u := ungated(m)
	for _, s := range append(append([]string{}, gateSeeds...), canaries...) {
		for _, in := range []string{s, "x " + s + " y", s + "." + s} {
			if got, want := m.String(in), u.String(in); got != want {
				t.Errorf("String(%q) = %q; ungated %q", in, got, want)
			}
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		``, ` `, `1`, `-0.5e+3`, `01`, `-`, `1.`, `1e`, `.5`, `"a"`, `"\u00e9\n"`, `"\x"`, `"\u12"`, "\"\x01\"", "\"\xff\"",
		`{}`, `[]`, `{"a":1,"b":[true,false,null]}`, `{"a" : [ 1 , "x" ] }`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`,
		`{"a" 1}`, `{1:2}`, `}`, `]`, `[}`, `{]`, `truex`, `nul`, `[[[[]]]]`, `{"a":{"b":{"c":[{}]}}}`, "\t[\n1\r]\n",
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)))
	f.Add([]byte(strings.Repeat("[", 10001) + strings.Repeat("]", 10001)))
	f.Add([]byte(strings.Repeat(`{"a":`, 300) + "1" + strings.Repeat("}", 300)))
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, want := validJSON(in), json.Valid(in); got != want {
			t.Fatalf("validJSON(%q) = %v; json.Valid says %v", in, got, want)
		}
		if got, want := validJSON(string(in)), json.Valid(in); got != want {
			t.Fatalf("validJSON(string %q) = %v; json.Valid says %v", in, got, want)
		}
		if len(in) > 0 && in[0] == '"' && json.Valid(in) {
			if e := stringEnd(in, 0); e != len(in) {
				t.Fatalf("stringEnd(%q) = %d; want %d", in, e, len(in))
			}
		}
	})
}
