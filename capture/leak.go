package capture

import (
	"bytes"
	"slices"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Names of the built-in detectors in Record.PIILeak. A custom pattern is
// named by its configured name (kz_iin).
const (
	LeakEmail      = "email"
	LeakCard       = "card"
	LeakPhone      = "phone"
	LeakIBAN       = "iban"
	LeakAPIKey     = "api_key"
	LeakPrivateKey = "private_key"
	LeakJWT        = "jwt"
)

// maxLeakScanBytes bounds the response text one record's leak check reads.
const maxLeakScanBytes = 1 << 20

// leakName names a detector in Record.PIILeak; "" for the detectors that
// do not count as a leak (IP addresses: models write them in ordinary
// technical answers). NewMasker stores it in detector.leak, so that the
// check, which runs on every response, does not lower-case a custom
// pattern's name per detector and response (issue 15).
func leakName(d *detector) string {
	switch d.kind {
	case detEmail:
		return LeakEmail
	case detCard:
		return LeakCard
	case detPhone:
		return LeakPhone
	case detIBAN:
		return LeakIBAN
	case detToken:
		return LeakAPIKey
	case detPrivateKey:
		return LeakPrivateKey
	case detJWT:
		return LeakJWT
	case detCustom:
		return strings.ToLower(d.ph[1 : len(d.ph)-1])
	}
	return ""
}

// Leaks returns the names of the detectors that find, in a successful chat
// response's content or tool-call arguments, a value that does not occur in
// the request (its body as received, or the route's system prompt), sorted
// and without repeats; nil when there is none. It never returns a value.
// raw is only read. Safe for concurrent use.
//
// It is cheap on the common path: one feature pre-scan of the response
// text decides, as for masking, which detectors may match, and usually
// none may.
func (m *Masker) Leaks(endpoint string, status int, raw *RawBodies) (names []string) {
	if raw == nil || status < 200 || status >= 300 || endpoint != "chat.completions" && endpoint != "completions" && endpoint != "responses" {
		return nil
	}
	defer func() {
		if recover() != nil {
			names = nil // a detector bug must not cost the record
		}
	}()
	var lc leakCheck
	if raw.StreamContent != "" || len(raw.StreamToolCalls) > 0 || raw.FinishReason != "" {
		lc.text(m, raw.StreamContent)
		if len(raw.StreamToolCalls) > 0 {
			gjson.ParseBytes(raw.StreamToolCalls).ForEach(func(_, tc gjson.Result) bool {
				lc.text(m, tc.Get("arguments").Str)
				return true
			})
		}
	} else if body := raw.ResponseBody; len(body) > 0 {
		if content, ok := plainAnswer(body); ok {
			lc.jsonText(m, content)
		} else {
			lc.answer(m, body)
		}
	}
	if len(lc.found) == 0 {
		return nil
	}
	req := leakRequest{body: raw.RequestBody, system: raw.SystemPrompt}
	for _, f := range lc.found {
		if !req.holds(f.kind, f.value) && !slices.Contains(names, f.name) {
			names = append(names, f.name)
		}
	}
	slices.Sort(names)
	return names
}

// contentKey opens the message content as providers write it.
const contentKey = `"content":"`

// plainAnswer finds the content string token of a chat.completion that
// has no tool or function call, the common case, jumping from quote to
// quote (quotes are sparse in an answer and IndexByte is the fastest scan
// there is) and walking the content once. ok is false when the body needs
// the structured walk of answer: a tool or function call, content parts,
// a legacy text, no `"content":"` at all (null, pretty-printed). In a
// chat.completion the first content key is choices[0].message.content (id,
// object, created, model and choices come first; Azure's
// content_filter_results do not match).
func plainAnswer(body []byte) (content []byte, ok bool) {
	for i := 0; ; i++ {
		k := bytes.IndexByte(body[i:], '"')
		if k < 0 {
			return content, content != nil
		}
		i += k
		rest := body[i:]
		switch {
		case content == nil && bytes.HasPrefix(rest, []byte(contentKey)):
			s := i + len(contentKey) - 1
			e := stringEnd(body, s)
			content, i = body[s:e], e-1
		case bytes.HasPrefix(rest, []byte(`"tool_calls"`)), bytes.HasPrefix(rest, []byte(`"function_call"`)),
			bytes.HasPrefix(rest, []byte(`"text"`)):
			return nil, false
		}
	}
}

// answer checks choice 0 of a chat (or legacy) completion body: the
// content (string or text parts), tool-call arguments, the legacy
// function_call and text. It reads the body with the masker's own
// zero-copy scanner, in one pass per object level; a body that is not
// valid JSON may panic in it, which Leaks recovers.
func (lc *leakCheck) answer(m *Masker, body []byte) {
	var top [1][]byte
	if !objectFields(body, []string{"choices"}, top[:]) || len(top[0]) < 2 || top[0][0] != '[' {
		return
	}
	choices := top[0]
	i := skipSpace(choices, 1)
	if i >= len(choices) || choices[i] != '{' {
		return
	}
	first := choices[i:skipValue(choices, i)]
	var c [2][]byte
	objectFields(first, []string{"message", "text"}, c[:])
	lc.jsonText(m, c[1])
	msg := c[0]
	if len(msg) == 0 || msg[0] != '{' {
		return
	}
	var f [3][]byte
	objectFields(msg, []string{"content", "tool_calls", "function_call"}, f[:])
	switch content := f[0]; {
	case len(content) > 0 && content[0] == '[':
		eachElement(content, func(part []byte) {
			var t [1][]byte
			if objectFields(part, []string{"text"}, t[:]) {
				lc.jsonText(m, t[0])
			}
		})
	default:
		lc.jsonText(m, content)
	}
	if calls := f[1]; len(calls) > 0 && calls[0] == '[' {
		eachElement(calls, func(call []byte) {
			var fn [1][]byte
			if objectFields(call, []string{"function"}, fn[:]) && len(fn[0]) > 0 && fn[0][0] == '{' {
				var args [1][]byte
				objectFields(fn[0], []string{"arguments"}, args[:])
				lc.jsonText(m, args[0])
			}
		})
	}
	if fc := f[2]; len(fc) > 0 && fc[0] == '{' {
		var args [1][]byte
		objectFields(fc, []string{"arguments"}, args[:])
		lc.jsonText(m, args[0])
	}
}

// jsonText checks a JSON string token (anything else is skipped). A
// token without escapes is pre-scanned in place, and copied into a string
// for the detectors only when one of them may match.
func (lc *leakCheck) jsonText(m *Masker, tok []byte) {
	if len(tok) < 6 || tok[0] != '"' { // 4 bytes and quotes: see text
		return
	}
	body := tok[1 : len(tok)-1]
	if bytes.IndexByte(body, '\\') >= 0 || len(body) > maxLeakScanBytes-lc.scanned {
		lc.text(m, decodeJSONString(tok))
		return
	}
	f := scanFeatures(body)
	if !lc.mayLeak(m, &f, body) {
		lc.scanned += len(body)
		return
	}
	lc.textWith(m, bytesView(body), &f)
}

// bytesView returns b as a string without copying it. The leak check
// reads the record's raw response, which nothing writes while the check
// runs, and keeps no value past Leaks, which returns only detector names.
func bytesView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// mayLeak reports whether a leak detector may match text with features f.
// The private-key gate (five dashes in a row) opens on any ASCII rule, so
// it also needs the block's opening.
func (lc *leakCheck) mayLeak(m *Masker, f *features, text []byte) bool {
	if !m.mayMatch(f) {
		return false
	}
	for i := range m.detectors {
		d := &m.detectors[i]
		if d.leak == "" || !d.maybe(f) {
			continue
		}
		if d.kind != detPrivateKey || bytes.Contains(text, []byte("-----BEGIN")) {
			return true
		}
	}
	return false
}

// eachElement calls f with each element of the JSON array arr.
func eachElement(arr []byte, f func(v []byte)) {
	i := skipSpace(arr, 1)
	for i < len(arr) && arr[i] != ']' {
		e := skipValue(arr, i)
		f(arr[i:e])
		i = skipSpace(arr, e)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
}

// LeaksMasked is Leaks for a chat record whose response the masker has
// just masked into masked (Record.Response): masking replaced every value
// its detectors found with a placeholder, so a masked response without a
// placeholder cannot leak, and the raw answer is checked only when one
// appears (or the answer was not masked). The common case costs one scan
// for '[' instead of a second pre-scan of the answer.
func (m *Masker) LeaksMasked(endpoint string, status int, raw *RawBodies, masked []byte) []string {
	if (endpoint == "chat.completions" || endpoint == "responses") && len(masked) > 0 && !m.hasPlaceholder(masked) {
		return nil
	}
	return m.Leaks(endpoint, status, raw)
}

// hasPlaceholder reports whether b holds a placeholder of m ([EMAIL],
// [KZ_IIN], [MASKING_FAILED], …).
func (m *Masker) hasPlaceholder(b []byte) bool {
	for i := 0; ; i++ {
		k := bytes.IndexByte(b[i:], '[')
		if k < 0 {
			return false
		}
		i += k
		end := bytes.IndexByte(b[i+1:min(len(b), i+40)], ']')
		if end > 0 && m.kinds[string(b[i+1:i+1+end])] {
			return true
		}
	}
}

// leakFound is one value a detector found in the response.
type leakFound struct {
	name, value string
	kind        detectorKind
}

type leakCheck struct {
	scanned int
	found   []leakFound
	spans   []span
}

// text runs the leak detectors over one piece of response text.
func (lc *leakCheck) text(m *Masker, s string) {
	if len(s) < 4 || lc.scanned >= maxLeakScanBytes {
		return
	}
	if rest := maxLeakScanBytes - lc.scanned; len(s) > rest {
		s = s[:rest]
	}
	f := scanFeatures(s)
	lc.textWith(m, s, &f)
}

// textWith is text with the features of s counted (s within the budget).
func (lc *leakCheck) textWith(m *Masker, s string, fp *features) {
	lc.scanned += len(s)
	f := *fp
	if !m.mayMatch(&f) {
		return
	}
	// Detectors run in masking order; a later one does not report a
	// value inside an earlier one's (a card's digits are no phone).
	taken := lc.spans[:0]
	for i := range m.detectors {
		d := &m.detectors[i]
		name := d.leak
		if name == "" || !d.maybe(&f) {
			continue
		}
		start := len(taken)
		taken = d.findIn(s, taken)
		for _, sp := range taken[start:] {
			if overlaps(taken[:start], sp) {
				continue
			}
			lc.found = append(lc.found, leakFound{name: name, value: s[sp.s:sp.e], kind: d.kind})
		}
	}
	lc.spans = taken[:0]
}

func overlaps(spans []span, sp span) bool {
	for _, t := range spans {
		if t.s < sp.e && sp.s < t.e {
			return true
		}
	}
	return false
}

// leakRequest answers whether a value found in a response was already in
// the request. Numbers (cards, phones, IBANs, custom patterns) compare by
// their letters and digits only, so that "4111 1111 1111 1111" in the
// request covers "4111-1111-1111-1111" in the answer; emails compare
// without case; keys exactly.
type leakRequest struct {
	body   []byte
	system string
	norm   []byte // letters and digits of body+system, lower case; built once
	lower  []byte // body, 0, system, lower case; built once, if needed
}

func (q *leakRequest) holds(kind detectorKind, v string) bool {
	switch kind {
	case detToken, detPrivateKey, detJWT:
		return bytes.Contains(q.body, []byte(v)) || strings.Contains(q.system, v)
	case detEmail:
		return q.holdsEmail(v)
	}
	if q.norm == nil {
		q.norm = appendAlnumLower(make([]byte, 0, len(q.body)+len(q.system)+1), q.body)
		q.norm = append(q.norm, 0)
		q.norm = appendAlnumLower(q.norm, []byte(q.system))
	}
	nv := appendAlnumLower(nil, []byte(v))
	return len(nv) > 0 && bytes.Contains(q.norm, nv)
}

func appendAlnumLower(dst, s []byte) []byte {
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z':
			dst = append(dst, c+'a'-'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			dst = append(dst, c)
		}
	}
	return dst
}

// holdsEmail reports whether the request holds the address v (ASCII, as
// findEmails finds them) in any case. The body is not lower-cased as a
// whole, which cost a pass and a copy of a large request per address
// (issue 15): each '@' in it is compared in place. Only a body holding
// a rune that lower-cases to ASCII (foldsToASCII) falls back to
// lower-casing, once per record.
func (q *leakRequest) holdsEmail(v string) bool {
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
	if !foldsToASCII(b) {
		return false
	}
	if q.lower == nil {
		q.lower = bytes.ToLower(b)
	}
	return bytes.Contains(q.lower, []byte(strings.ToLower(v)))
}

// foldsToASCII reports whether b holds a rune whose lower case is ASCII:
// only U+0130 (İ, to i) and U+212A (the Kelvin sign, to k). Lower-casing
// maps every other non-ASCII rune (and each invalid byte) to non-ASCII
// bytes, so without these two an address in lower(b) is an ASCII window
// of b, which the '@' comparison already saw: the lower-cased copy of a
// large request (a pass and an allocation per record whose answer names
// an address, whenever the request holds an accent or a dash) is needed
// only when one of them occurs (issue 15).
func foldsToASCII(b []byte) bool {
	return bytes.Contains(b, []byte("\u0130")) || bytes.Contains(b, []byte("\u212A"))
}
