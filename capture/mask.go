package capture

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/cairnhq/cairn/configs"
)

// Placeholders written in place of what the detectors find. A custom
// pattern named kz_iin writes [KZ_IIN].
const (
	PlaceholderEmail         = "[EMAIL]"
	PlaceholderPhone         = "[PHONE]"
	PlaceholderCard          = "[CARD]"
	PlaceholderIBAN          = "[IBAN]"
	PlaceholderIPv4          = "[IPV4]"
	PlaceholderIPv6          = "[IPV6]"
	PlaceholderSecret        = "[SECRET]"
	PlaceholderJWT           = "[JWT]"
	PlaceholderMaskingFailed = "[MASKING_FAILED]"
)

// maxMaskedString bounds one string kept in a record. Longer strings are cut
// (at a UTF-8 boundary) and end in truncatedMark.
const (
	maxMaskedString = 1 << 20
	truncatedMark   = "…[TRUNCATED]"
	// maxPasses bounds the passes that reach a fixed point (see String).
	maxPasses = 4
)

// span is a half-open byte range [s, e) of a string.
type span struct{ s, e int }

// detectorKind selects a detector's gate and find function. A switch over
// kinds, rather than function values, keeps the features and the span
// buffer on the stack.
type detectorKind uint8

const (
	detPrivateKey detectorKind = iota
	detJWT
	detToken
	detEmail
	detIBAN
	detCard
	detCustom
	detIPv6
	detIPv4
	detPhone
	detFunc // find runs on every string (tests)
)

// detector finds one kind of sensitive value.
type detector struct {
	kind detectorKind
	ph   string // placeholder, e.g. "[EMAIL]"
	// always disables the gate (tests check the gates against it).
	always bool
	// Custom patterns: the expression, its prefilter and the digit run
	// every match holds.
	re        *regexp.Regexp
	pf        *customPrefilter
	minDigits int
	// find is detFunc's finder.
	find func(s string, dst []span) []span
	// leak is the detector's name in Record.PIILeak (leakName), "" when
	// its finds are no leak.
	leak string
	// phf are the features of the placeholder (see features.merge).
	phf features
}

// maybe is a cheap test on the string's features: false means the
// detector cannot match. Each test is a necessary condition of the
// detector's matches, derived from what its find function accepts.
func (d *detector) maybe(f *features) bool {
	if d.always {
		return true
	}
	switch d.kind {
	case detPrivateKey: // "-----BEGIN … PRIVATE KEY-----"
		return f.keyDashes
	case detJWT:
		return f.jwt && f.dots >= 2
	case detToken:
		return f.token
	case detEmail:
		return f.at
	case detIBAN:
		return f.iban
	case detCard:
		return f.cardDigits >= 13
	case detCustom:
		return f.maxDigitRun >= d.minDigits
	case detIPv6:
		return f.ipv6
	case detIPv4:
		return f.ipv4Dots >= 3
	case detPhone: // + and 8–15 digits, or a national number of 9 or more
		return f.phoneDigits >= 9 || f.plus && f.phoneDigits >= 8
	}
	return true
}

// findIn appends the validated spans in s, sorted and non-overlapping.
func (d *detector) findIn(s string, dst []span) []span {
	switch d.kind {
	case detPrivateKey:
		return findPrivateKeys(s, dst)
	case detJWT:
		return findJWTs(s, dst)
	case detToken:
		return findTokens(s, dst)
	case detEmail:
		return findEmails(s, dst)
	case detIBAN:
		return findIBANs(s, dst)
	case detCard:
		return findCards(s, dst)
	case detCustom:
		if !d.pf.maybe(s) {
			return dst
		}
		for _, loc := range d.re.FindAllStringIndex(s, -1) {
			if loc[1] > loc[0] {
				dst = append(dst, span{loc[0], loc[1]})
			}
		}
		return dst
	case detIPv6:
		return findIPv6(s, dst)
	case detIPv4:
		return findIPv4(s, dst)
	case detPhone:
		return findPhones(s, dst)
	}
	return append(dst, d.find(s, nil)...)
}

// Feature classes of a byte (0: nothing to count).
const (
	fcNone = iota
	fcDigit
	fcColon
	fcDot
	fcAt
	fcLBrack
	fcDash
	fcUnder
	fcA
	fcB
	fcJ
	fcPlus
	fcBackslash
	fcHigh
)

// Masker replaces personal data and secrets with placeholders that name
// their kind. Built-in detectors run first in this order: private key
// blocks, JWTs, secret tokens (sk-…, AKIA…, ghp_…, xox?-…, AIza…, Stripe
// keys, the token after "Bearer"), emails, IBANs (mod-97 checked), payment
// cards (Luhn checked, 13–19 digits with optional spaces or dashes), then
// the configured custom patterns, then IPv6, IPv4 and phone numbers (with a
// leading + and 8–15 digits, or a grouped national form such as
// (415) 555-0100 or 020 7946 0958; a bare run of digits is not a phone).
// Custom patterns run before the heuristic detectors so that, for example, a
// 12-digit national ID pattern wins over the phone detector.
//
// Masking is idempotent: placeholders are never matched again and String
// repeats its passes until nothing changes. A Masker is immutable after
// NewMasker and safe for concurrent use.
type Masker struct {
	detectors []detector
	// customs counts the custom detectors and customDigits is the
	// shortest digit run one of them requires (see mayMatch); ungated is
	// set when a detector has no gate.
	customs      int
	customDigits int
	ungated      bool
	// plainPlaceholders: every placeholder is printable ASCII without a
	// quote or backslash, so JSON writes it as it is (appendMaskedString).
	plainPlaceholders bool
	// markers is every text masking writes of its own (placeholders,
	// marks), for Secrets.verbatimSafe.
	markers string
	// kinds are the placeholder names without brackets, for recognising
	// placeholders already in the text.
	kinds map[string]bool
}

// NewMasker builds a Masker from the built-in detectors and m.Custom.
// Custom patterns whose Re is nil (not compiled by configs.Load) are
// compiled here; a pattern that does not compile is skipped (configs.Load
// refuses such configs).
func NewMasker(m configs.Masking) *Masker {
	mk := &Masker{kinds: map[string]bool{}, plainPlaceholders: true}
	for _, k := range []detectorKind{detPrivateKey, detJWT, detToken, detEmail, detIBAN, detCard} {
		mk.add(detector{kind: k, ph: builtinPlaceholder[k]})
	}
	for _, c := range m.Custom {
		re := c.Re
		if re == nil {
			var err error
			if re, err = regexp.Compile(c.Pattern); err != nil || re.MatchString("") {
				continue
			}
		}
		pf := newCustomPrefilter(re)
		mk.add(detector{kind: detCustom, ph: "[" + strings.ToUpper(c.Name) + "]", re: re, pf: pf, minDigits: pf.minDigitRun()})
	}
	for _, k := range []detectorKind{detIPv6, detIPv4, detPhone} {
		mk.add(detector{kind: k, ph: builtinPlaceholder[k]})
	}
	mk.kinds[PlaceholderMaskingFailed[1:len(PlaceholderMaskingFailed)-1]] = true
	mk.kinds[PlaceholderNumber[1:len(PlaceholderNumber)-1]] = true
	mk.markers = markerText(mk.kinds)
	return mk
}

// add appends a detector (during construction only).
func (m *Masker) add(d detector) {
	d.leak = leakName(&d)
	d.phf = scanFeatures(d.ph)
	for i := 0; i < len(d.ph); i++ {
		if c := d.ph[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			m.plainPlaceholders = false
		}
	}
	m.detectors = append(m.detectors, d)
	m.kinds[d.ph[1:len(d.ph)-1]] = true
	switch {
	case d.always || d.kind == detFunc:
		m.ungated = true
	case d.kind == detCustom:
		if m.customs == 0 || d.minDigits < m.customDigits {
			m.customDigits = d.minDigits
		}
		m.customs++
	}
}

// builtinPlaceholder is the placeholder of each built-in detector.
var builtinPlaceholder = [...]string{
	detPrivateKey: PlaceholderSecret, detJWT: PlaceholderJWT, detToken: PlaceholderSecret, detEmail: PlaceholderEmail,
	detIBAN: PlaceholderIBAN, detCard: PlaceholderCard, detIPv6: PlaceholderIPv6, detIPv4: PlaceholderIPv4, detPhone: PlaceholderPhone,
}

// String returns s with every detected value replaced by its placeholder.
// If masking panics it returns PlaceholderMaskingFailed, never s.
func (m *Masker) String(s string) (out string) {
	defer func() {
		if recover() != nil {
			out = PlaceholderMaskingFailed
		}
	}()
	return m.mask(s)
}

func (m *Masker) mask(s string) string {
	return m.maskWith(s, nil)
}

// maskWith is mask with the features of s already counted (f != nil; f
// is updated).
func (m *Masker) maskWith(s string, f *features) string {
	if t := truncate(s); len(t) != len(s) {
		s, f = t, nil
	}
	if len(s) < 4 {
		// Nothing shorter than [X] or a 4-char token is detected.
		return s
	}
	var ff features
	if f == nil {
		ff = scanFeatures(s)
		f = &ff
	}
	var arr [16]span
	buf := arr[:0]
	for range maxPasses {
		if !m.mayMatch(f) {
			return s
		}
		var out string
		out, buf = m.pass(s, f, buf)
		if out == s {
			return out
		}
		s = out
	}
	return s
}

// truncate cuts s to maxMaskedString bytes at a rune boundary.
func truncate(s string) string {
	if len(s) <= maxMaskedString+len(truncatedMark) {
		return s
	}
	cut := maxMaskedString
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncatedMark
}

// pass runs every detector once on s, whose features are f (or an
// over-approximation of them), and leaves in f features of the string it
// returns, again possibly over-approximated (see settle). buf is scratch
// space for spans; pass returns it, grown.
//
// A replacement does not rescan the string: it merges the placeholder's
// features into f (features.merge), an over-approximation that keeps every
// gate a necessary condition, so the detectors run exactly as before. The
// per-replacement rescan was a third of the masker's CPU on long text
// with an email per KB (issue 15); settle rescans at most once per pass.
func (m *Masker) pass(s string, f *features, buf []span) (string, []span) {
	stale := false
	for i := range m.detectors {
		d := &m.detectors[i]
		if !d.maybe(f) {
			continue
		}
		spans := d.findIn(s, buf[:0])
		buf = spans[:0]
		if len(spans) == 0 {
			continue
		}
		if f.lbrack {
			spans = m.dropPlaceholderOverlaps(s, spans)
			if len(spans) == 0 {
				continue
			}
		}
		s = replaceSpans(s, spans, d.ph)
		f.merge(&d.phf)
		stale = true
	}
	if stale {
		m.settle(s, f)
	}
	return s, buf
}

// mayMatch reports whether any detector may match a string with features
// f: the disjunction of every detector's maybe, written out so that the
// common case (no detector can match) costs one expression.
func (m *Masker) mayMatch(f *features) bool {
	return m.ungated || f.at || f.token || f.iban || f.jwt && f.dots >= 2 || f.keyDashes ||
		f.cardDigits >= 13 || f.ipv6 || f.ipv4Dots >= 3 || f.phoneDigits >= 9 || f.plus && f.phoneDigits >= 8 ||
		m.customs > 0 && f.maxDigitRun >= m.customDigits
}

// dropPlaceholderOverlaps removes spans that touch a placeholder already in s,
// so that masked text is never masked again (a custom pattern such as
// [A-Z]+ must not turn [EMAIL] into [[NAME]]).
func (m *Masker) dropPlaceholderOverlaps(s string, spans []span) []span {
	var ph []span
	for i := 0; i < len(s); i++ {
		k := strings.IndexByte(s[i:], '[')
		if k < 0 {
			break
		}
		i += k
		end := strings.IndexByte(s[i+1:min(len(s), i+40)], ']')
		if end > 0 && m.kinds[s[i+1:i+1+end]] {
			ph = append(ph, span{i, i + end + 2})
			i += end + 1
		}
	}
	if len(ph) == 0 {
		return spans
	}
	out := spans[:0]
	j := 0
	for _, sp := range spans {
		for j < len(ph) && ph[j].e <= sp.s {
			j++
		}
		if j < len(ph) && ph[j].s < sp.e {
			continue // overlaps a placeholder
		}
		out = append(out, sp)
	}
	return out
}

func replaceSpans(s string, spans []span, ph string) string {
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, sp := range spans {
		if sp.s < last {
			continue
		}
		b.WriteString(s[last:sp.s])
		b.WriteString(ph)
		last = sp.e
	}
	b.WriteString(s[last:])
	return b.String()
}
