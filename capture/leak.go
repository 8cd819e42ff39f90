package capture

import (
	"bytes"
	"slices"
	"strings"

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
// technical answers).
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
	if raw == nil || status < 200 || status >= 300 || endpoint != "chat.completions" && endpoint != "completions" {
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
	} else if len(raw.ResponseBody) > 0 {
		ch := gjson.GetBytes(raw.ResponseBody, "choices.0")
		if t := ch.Get("text"); t.Type == gjson.String { // legacy completions
			lc.text(m, t.Str)
		}
		msg := ch.Get("message")
		if c := msg.Get("content"); c.Type == gjson.String {
			lc.text(m, c.Str)
		} else if c.IsArray() {
			c.ForEach(func(_, p gjson.Result) bool {
				lc.text(m, p.Get("text").Str)
				return true
			})
		}
		msg.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			lc.text(m, tc.Get("function.arguments").Str)
			return true
		})
		lc.text(m, msg.Get("function_call.arguments").Str)
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
	lc.scanned += len(s)
	f := scanFeatures(s)
	if !m.mayMatch(&f) {
		return
	}
	// Detectors run in masking order; a later one does not report a
	// value inside an earlier one's (a card's digits are no phone).
	taken := lc.spans[:0]
	for i := range m.detectors {
		d := &m.detectors[i]
		name := leakName(d)
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
}

func (q *leakRequest) holds(kind detectorKind, v string) bool {
	switch kind {
	case detToken, detPrivateKey, detJWT:
		return bytes.Contains(q.body, []byte(v)) || strings.Contains(q.system, v)
	case detEmail:
		lv := strings.ToLower(v)
		return bytes.Contains(bytes.ToLower(q.body), []byte(lv)) || strings.Contains(strings.ToLower(q.system), lv)
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
