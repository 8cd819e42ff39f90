package capture

import (
	"bytes"
	"strings"
)

// Why the writer redacts a record twice, and when the second pass may
// skip the masked request (issue 15).
//
// The first pass (redactRecord, before masking) replaces every secret in
// the raw bodies, written plainly or with JSON escapes. Masking may then
// write text the raw body did not hold: it decodes escaped strings and
// writes them again (a secret escaped twice, inside tool-call arguments,
// comes out plain), and it writes placeholders and marks of its own. So
// the second pass reads the masked bodies again.
//
// A masked chat, completions or embeddings request (requestMessages)
// holds nothing new when (1) the raw body is valid JSON (as the proxy
// parsed it; pass one changed nothing) and holds no \u or \/ escape,
// so that every string masking decodes and writes again comes out with
// the same escapes (\n, \", \\, \t, \r, \b, \f decode and encode back to
// themselves), (2) the masked body holds no \u, so no escape was written
// anew (U+2028, invalid UTF-8), and (3) every secret is tokenish: made of
// letters, digits and "-_.~+/=" with a letter, and found in no text the
// masker writes (Secrets.verbatimSafe). Then the masked body is the
// redacted raw body's bytes, less the whitespace between tokens, with
// spans replaced by placeholders, numbers quoted and data URLs elided:
// every junction between kept and new bytes has a quote, bracket,
// backslash, comma, colon or space on one side, which no tokenish secret
// holds, and a count of elided bytes has no letter; so a secret in it
// lies in kept bytes, where the first pass (which reads the raw text,
// escapes' letters included, byte by byte) found none. The second pass
// over the request, a full read of the largest part of most records, is
// then skipped. FuzzRedactMaskedSkipIsSound checks the claim.

// redactMasked is the second pass: redactRecord over the masked record,
// except r.Request when the argument above holds. plainReq is
// plainRequest of the raw bodies.
func redactMasked(s *Secrets, mk *Masker, r *Record, plainReq bool) {
	if s.Len() == 0 {
		return
	}
	if !skipMaskedRequest(s, mk, r, plainReq) {
		redactRecord(s, r)
		return
	}
	req := r.Request
	r.Request = nil
	redactRecord(s, r)
	r.Request = req
}

// plainRequest is condition (1) on the raw request body.
func plainRequest(raw *RawBodies) bool {
	return raw != nil && raw.RequestValid && !bytes.Contains(raw.RequestBody, []byte(`\u`)) && !bytes.Contains(raw.RequestBody, []byte(`\/`))
}

// skipMaskedRequest reports whether the argument above holds for r.
func skipMaskedRequest(s *Secrets, mk *Masker, r *Record, plainReq bool) bool {
	return plainReq && r.Endpoint != "responses" && len(r.Request) > 0 && !bytes.Contains(r.Request, []byte(`\u`)) && s.verbatimSafe(mk)
}

// verbatimSafe reports whether every secret is tokenish and none occurs
// in the text mk writes of its own.
func (s *Secrets) verbatimSafe(mk *Masker) bool {
	return s.tokenish && mk.markers != "" && !s.ContainsString(mk.markers)
}

// allTokenish reports whether every value is made of letters, digits and
// "-_.~+/=" and holds a letter.
func allTokenish(values []string) bool {
	for _, v := range values {
		letter := false
		for i := 0; i < len(v); i++ {
			c := v[i]
			switch {
			case isAlpha(c):
				letter = true
			case isDigit(c), strings.IndexByte("-_.~+/=", c) >= 0:
			default:
				return false
			}
		}
		if !letter {
			return false
		}
	}
	return true
}

// markerText joins the placeholders of kinds and the marks masking
// writes (truncation, elision), for verbatimSafe.
func markerText(kinds map[string]bool) string {
	var b strings.Builder
	for k := range kinds {
		b.WriteString("[" + k + "] ")
	}
	b.WriteString(truncatedMark + " [ELIDED 0 bytes]")
	return b.String()
}
