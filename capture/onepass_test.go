//go:build !race

package capture

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Issue 15: masking reads each byte of a clean body once. These tests pin
// the work a clean or echoed body costs (allocations and bytes), which the
// old code multiplied: prose containing "data:" left the fast path and
// was decoded, copied and compared; each address the leak check found
// lowered a copy of the whole request.

// TestCleanProseWithDataWordStaysOnFastPath: a long string that mentions
// "metadata: …" (or holds JSON without a data URL) is kept as it is,
// without decoding or copying it: masking it into a buffer of the right
// size allocates nothing.
func TestCleanProseWithDataWordStaysOnFastPath(t *testing.T) {
	m := testMasker(t)
	prose := strings.Repeat("the parcel left the depot and is on its way to the customer ", 40) +
		"see the metadata: it says delivered " + strings.Repeat("and refunds apply ", 20)
	embedded := `{\"answer\":\"` + strings.Repeat("the parcel left the depot, no data attached ", 20) + `\",\"confidence\":0.82}`
	for _, tt := range []struct{ name, doc string }{
		{"prose", `{"role":"user","content":"` + prose + `"}`},
		{"embedded JSON, no data URL", `{"role":"assistant","content":"` + embedded + `"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.doc)
			dst := make([]byte, 0, 2*len(raw))
			var out []byte
			allocs := testing.AllocsPerRun(50, func() { out = m.appendJSON(dst[:0], raw, 0, true, true) })
			if string(out) != tt.doc {
				t.Fatalf("appendJSON changed a clean document:\n got %s\nwant %s", out, tt.doc)
			}
			if allocs != 0 {
				t.Errorf("appendJSON of a clean %d-byte document allocated %.0f times; want 0 (no decode, no copy)", len(raw), allocs)
			}
		})
	}
}

// TestDataURLStillElidedWherever: the fast path's shortcut keeps eliding
// inlined data wherever it may be: a string that is a data URL, and JSON
// held in a string (after white space, plain or escaped) that holds one.
func TestDataURLStillElidedWherever(t *testing.T) {
	m := testMasker(t)
	b64 := strings.Repeat("QUJD", 100)
	for _, tt := range []struct{ name, in, want string }{
		{"string is a data URL", `{"url":"data:image/png;base64,` + b64 + `"}`,
			`{"url":"data:image/png;base64,[ELIDED 400 bytes]"}`},
		{"JSON in a string", `{"args":"{\"img\":\"data:image/png;base64,` + b64 + `\"}"}`,
			`{"args":"{\"img\":\"data:image/png;base64,[ELIDED 400 bytes]\"}"}`},
		{"JSON in a string after escaped white space", `{"args":"\n\t {\"img\":\"data:image/png;base64,` + b64 + `\"}"}`,
			`{"args":"\n\t {\"img\":\"data:image/png;base64,[ELIDED 400 bytes]\"}"}`},
		{"JSON array in a string after a non-breaking space", `{"args":"` + "\u00a0" + `[\"data:image/png;base64,` + b64 + `\"]"}`,
			`{"args":"` + "\u00a0" + `[\"data:image/png;base64,[ELIDED 400 bytes]\"]"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(m.JSON([]byte(tt.in))); got != tt.want {
				t.Errorf("JSON(%q)\n got %s\nwant %s", tt.in[:60], got, tt.want)
			}
		})
	}
}

// TestLeakEmailCheckCopiesNothing: an answer that repeats the request's
// address (in another case) is no leak, and deciding so does not copy the
// request: the old check lowered the whole request body for every address
// it found (a 256 KB request, eight addresses: 2 MB per record).
func TestLeakEmailCheckCopiesNothing(t *testing.T) {
	m := testMasker(t)
	pad := strings.Repeat("the parcel left the depot and is on its way to the customer ", 4500)
	req := []byte(`{"model":"m","messages":[{"role":"user","content":"` + pad + ` write to Jane.Doe@Example.com please"}]}`)
	answer := strings.Repeat("I wrote to jane.doe@example.com again. ", 8)
	raw := RawBodies{RequestBody: req, ResponseBody: chatBody(answer)}
	if got := m.Leaks("chat.completions", 200, &raw); got != nil {
		t.Fatalf("Leaks = %q; want none (the address is the request's)", got)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const runs = 10
	for range runs {
		m.Leaks("chat.completions", 200, &raw)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > uint64(len(req))/8 {
		t.Errorf("Leaks allocated %d bytes per record for a %d-byte request; want < %d (no copy of the request)", per, len(req), len(req)/8)
	}

	// Leaks still tell a new address from the request's.
	raw.ResponseBody = chatBody(answer + "Or bob@evil.example.")
	if got := m.Leaks("chat.completions", 200, &raw); !slices.Equal(got, []string{"email"}) {
		t.Errorf("Leaks = %q; want [email]", got)
	}
}

// TestLeakEmailCaseFoldNonASCII: a request with non-ASCII text still
// covers its own address written in another case.
func TestLeakEmailCaseFoldNonASCII(t *testing.T) {
	m := testMasker(t)
	req := []byte(`{"messages":[{"role":"user","content":"Grüße, écrivez à José.Núñez@Exämple.com ou Jane.Doe@Example.COM"}]}`)
	raw := RawBodies{RequestBody: req, ResponseBody: chatBody("Je vais écrire à jane.doe@example.com.")}
	if got := m.Leaks("chat.completions", 200, &raw); got != nil {
		t.Errorf("Leaks = %q; want none", got)
	}
}

// TestLeakCheckOfCleanAnswerAllocatesNothing: the check every response
// gets, sampled or not, reads an answer whose digits wake a detector's
// gate (dates, amounts, an order number) in place: no copy of the answer,
// no detector name built per response (the old check copied the answer
// and lower-cased the custom patterns' names: 5 allocations here).
func TestLeakCheckOfCleanAnswerAllocatesNothing(t *testing.T) {
	m := testMasker(t)
	p := "Your order 12345 from 2026-11-24 shipped on Thursday via the regional carrier; the tracking page at https://shop.example/track/12345 updates once a day. " +
		"Parcels in transit for more than 7 days are treated as lost: you can ask for a refund of $49.99 or a free replacement, whichever you prefer. "
	raw := &RawBodies{RequestBody: []byte(`{"model":"m","messages":[{"role":"user","content":"Where is order 12345?"}]}`), ResponseBody: chatBody(strings.Repeat(p, 7))}
	var got []string
	allocs := testing.AllocsPerRun(100, func() { got = m.Leaks("chat.completions", 200, raw) })
	if got != nil {
		t.Fatalf("Leaks = %q; want none", got)
	}
	if allocs != 0 {
		t.Errorf("Leaks of a clean 2 KB answer allocated %.0f times; want 0", allocs)
	}
}
