package capture

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// Differential and regression tests for the masker's fast paths (issue
// 15): each fast path must give exactly what the path it replaces gave.

// FuzzAppendJSONString holds capture's word-at-a-time string quoting to
// internal/jsonstr's byte-at-a-time one.
// TestMaskJSONPlainQuotingMatchesEscaping: a masked string token without
// escapes is written between quotes as it is; a masker that re-escapes
// every masked string (the old path) writes the same bytes.
func TestMaskJSONPlainQuotingMatchesEscaping(t *testing.T) {
	m := testMasker(t)
	slow := *m
	slow.plainPlaceholders = false
	for _, doc := range []string{
		`{"messages":[{"role":"user","content":"write to bob@example.com or call +1 (415) 555-0100"}]}`,
		`["café bob@example.com 日本", "tab\there bob@example.com", "\u2028 bob@example.com", "line sep  bob@example.com"]`,
		`{"bob@example.com":"4111 1111 1111 1111","k":["TCK-12345 ok", "990101300123", "sk-abcdefghijklmnopqrstuvwxyz012345"]}`,
		`"` + strings.Repeat("prose, bob@example.com and 10.0.0.1; ", 200) + `"`,
		`{"a":"data:image/png;base64,` + strings.Repeat("QUJD", 100) + `"}`,
		"[\"invalid \xff utf-8 bob@example.com\"]",
	} {
		if got, want := m.JSON([]byte(doc)), slow.JSON([]byte(doc)); !bytes.Equal(got, want) {
			t.Errorf("JSON(%s)\n = %s\nre-escaping writes %s", doc, got, want)
		}
	}
}

func FuzzMaskJSONPlainQuoting(f *testing.F) {
	for _, s := range gateSeeds {
		f.Add(s)
	}
	m := testMasker(f)
	slow := *m
	slow.plainPlaceholders = false
	f.Fuzz(func(t *testing.T, s string) {
		for _, doc := range [][]byte{appendJSONString(nil, s), []byte(`{"k":` + string(appendJSONString(nil, s)) + `}`), []byte(s)} {
			if got, want := m.JSON(doc), slow.JSON(doc); !bytes.Equal(got, want) {
				t.Fatalf("JSON(%s) = %s; re-escaping writes %s", doc, got, want)
			}
		}
	})
}

// TestGatesStayShutOnPlaceholdersAndDates: the token gate does not open
// on the "AI" of [EMAIL] or of prose, nor the private-key gate on a few
// dates. Before, both opened, and their finders read the whole string on
// every pass (issue 15).
func TestGatesStayShutOnPlaceholdersAndDates(t *testing.T) {
	m := testMasker(t)
	gate := func(k detectorKind, s string) bool {
		f := scanFeatures(s)
		for i := range m.detectors {
			if m.detectors[i].kind == k {
				return m.detectors[i].maybe(&f)
			}
		}
		t.Fatalf("no detector of kind %d", k)
		return false
	}
	for _, c := range []struct {
		kind detectorKind
		in   string
		want bool
	}{
		{detToken, "write to [EMAIL] about OpenAI and AI safety", false},
		{detToken, "AKIAIOSFODNN7EXAMPLE", true},
		{detToken, "ASIAIOSFODNN7EXAMPLE", true},
		{detToken, "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", true},
		{detPrivateKey, "from 2026-11-02 to 2026-11-09, 2026-12-01 and 2026-12-24 - all-hands", false},
		{detPrivateKey, "-----BEGIN PRIVATE KEY-----", true},
	} {
		if got := gate(c.kind, c.in); got != c.want {
			t.Errorf("gate %d on %q = %v; want %v", c.kind, c.in, got, c.want)
		}
	}
}

// refMask is the masker's fixed point computed the plain way: every
// detector on every pass, no features, no gates.
func refMask(m *Masker, s string) string {
	if t := truncate(s); len(t) != len(s) {
		s = t
	}
	if len(s) < 4 {
		return s
	}
	for range maxPasses {
		out := s
		for i := range m.detectors {
			spans := m.detectors[i].findIn(out, nil)
			if spans = m.dropPlaceholderOverlaps(out, spans); len(spans) > 0 {
				out = replaceSpans(out, spans, m.detectors[i].ph)
			}
		}
		if out == s {
			return out
		}
		s = out
	}
	return s
}

// FuzzMaskMatchesReference holds the gated, merge-and-settle masker to
// refMask.
func FuzzMaskMatchesReference(f *testing.F) {
	for _, s := range append(append([]string{}, gateSeeds...), canaries...) {
		f.Add(s)
		f.Add(s + " and bob@example.com, " + s)
	}
	f.Add(proseBlock)
	m := testMasker(f)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := m.String(s), refMask(m, s); got != want {
			t.Fatalf("String(%q) = %q; every detector on every pass gives %q", s, got, want)
		}
	})
}

func TestMaskProseMatchesReference(t *testing.T) {
	m := testMasker(t)
	for _, n := range []int{100, 1000, 5000, 20000} {
		s := proseText(n)
		if got, want := m.String(s), refMask(m, s); got != want {
			t.Errorf("String(prose %d) differs from the reference", n)
		}
	}
}

// holdsEmailLower is leakRequest.holdsEmail as it was: a request with any
// non-ASCII byte was lower-cased whole.
func holdsEmailLower(q *leakRequest, v string) bool {
	if strings.Contains(strings.ToLower(q.system), strings.ToLower(v)) {
		return true
	}
	at := strings.IndexByte(v, '@')
	if at < 0 {
		return false
	}
	b := q.body
	for i := 0; ; i++ {
		k := bytes.IndexByte(b[i:], '@')
		if k < 0 {
			break
		}
		i += k
		if s := i - at; s >= 0 && s+len(v) <= len(b) && bytes.EqualFold(b[s:s+len(v)], []byte(v)) {
			return true
		}
	}
	ascii := true
	for _, c := range b {
		ascii = ascii && c < utf8.RuneSelf
	}
	return !ascii && bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(v)))
}

func FuzzHoldsEmail(f *testing.F) {
	f.Add([]byte("Grüße Jane.Doe@Example.COM"), "jane.doe@example.com")
	f.Add([]byte("\u0130nfo@x.com"), "info@x.com")
	f.Add([]byte("\u212Aate@x.com"), "kate@x.com")
	f.Add([]byte("\xffbob@x.com"), "bob@x.com")
	f.Fuzz(func(t *testing.T, body []byte, v string) {
		if got, want := (&leakRequest{body: body}).holdsEmail(v), holdsEmailLower(&leakRequest{body: body}, v); got != want {
			t.Fatalf("holdsEmail(%q, %q) = %v; lower-casing the body says %v", body, v, got, want)
		}
	})
}

// TestLeakEmailNonASCIIRequestCopiesNothing: a request with an accent or
// an en dash is not lower-cased whole to learn that it does not hold an
// address the answer names (it was, once per record: a copy of the whole
// request).
func TestLeakEmailNonASCIIRequestCopiesNothing(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":"` + strings.Repeat("Grüße – ", 1000) + `"}]}`)
	if n := testing.AllocsPerRun(20, func() {
		q := leakRequest{body: body}
		if q.holdsEmail("jane.doe@example.com") {
			t.Fatal("holds")
		}
	}); n != 0 {
		t.Errorf("holdsEmail on a non-ASCII request allocates %v times; want 0", n)
	}
}

// TestClientIDHashPooled: the pooled hash is the HMAC lookups compute,
// and allocates only its result.
func TestClientIDHashPooled(t *testing.T) {
	h := &idHasher{keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}}
	for _, id := range []string{"", "a", "client-0001", strings.Repeat("x", 5000), "client-0001"} {
		if got, want := h.hash(id), hashClientID(h.keys[0], id); got != want {
			t.Errorf("hash(%q) = %q; want %q", id, got, want)
		}
	}
}
