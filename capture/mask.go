package capture

import (
	"encoding/base64"
	"net/netip"
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
		return f.dashes >= 10
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

// features are counted in one pass over a string so that most detectors are
// skipped without running. Every field is a necessary condition of some
// detector's match (see detector.maybe): a string whose features rule out every
// detector is kept as it is without running any.
type features struct {
	dots, dashes int
	// maxDigitRun is the longest run of consecutive digits.
	maxDigitRun int
	// cardDigits is the most digits in a chain of digit groups joined by
	// one ' ' or '-' (the shape findCards looks at).
	cardDigits int
	// phoneDigits is the most digits in a chain of digit groups joined by
	// gaps of at most three bytes from " -.()" (the shape phoneAt allows).
	phoneDigits int
	// ipv4Dots is the most single dots between digits in one chain of
	// digits and dots.
	ipv4Dots int
	// ipv6: two colons with at most four hex digits between them (every
	// IPv6 address with two colons has such a pair).
	ipv6             bool
	at, lbrack, plus bool
	// jwt: "eyJ" occurs.
	jwt bool
	// token: a prefix findTokens knows may start here: '-' or '_' after
	// one of the letters that end sk, rk, xox?, gh?, github; "AK", "AS",
	// "AI"; "bearer" in any case.
	token bool
	// iban: two letters directly followed by two digits.
	iban bool
	// escape: a backslash (in a JSON string token: decoding changes the
	// string); uEscape: a backslash followed by 'u'. nonASCII: a byte
	// >= 0x80.
	escape, uEscape, nonASCII bool
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

// featureClass maps a byte to its feature class.
var featureClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = fcDigit
	}
	t[':'], t['.'], t['@'], t['['], t['-'], t['_'] = fcColon, fcDot, fcAt, fcLBrack, fcDash, fcUnder
	t['A'], t['b'], t['B'], t['J'], t['+'], t['\\'] = fcA, fcB, fcB, fcJ, fcPlus, fcBackslash
	for c := 0x80; c < 0x100; c++ {
		t[c] = fcHigh
	}
	return t
}()

// tokenSepAfter marks the letters a token prefix has right before its
// first '-' or '_': sk-, sk_, rk_, xox[abposr]-, gh[pousr]_, github_.
var tokenSepAfter = [256]bool{'k': true, 'a': true, 'b': true, 'p': true, 'o': true, 's': true, 'r': true, 'u': true}

// isPhoneGap reports whether the bytes between two digit groups may lie
// inside one phone number: at most ")", one of " -.", "(" in that order,
// so at most three bytes from " -.()".
func isPhoneGap[T ~string | ~[]byte](g T) bool {
	if len(g) > 3 {
		return false
	}
	for i := 0; i < len(g); i++ {
		switch g[i] {
		case ' ', '-', '.', '(', ')':
		default:
			return false
		}
	}
	return true
}

func allHex[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func scanFeatures[T ~string | ~[]byte](s T) features {
	var f features
	last := -1      // index of the previous digit
	lastColon := -9 // index of the previous colon
	run, card, phone, ip := 0, 0, 0, 0
	for i := 0; i < len(s); i++ {
		// Most bytes count for nothing: skip them, four at a time first.
		for i+4 <= len(s) && featureClass[s[i]]|featureClass[s[i+1]]|featureClass[s[i+2]]|featureClass[s[i+3]] == fcNone {
			i += 4
		}
		if i == len(s) {
			return f
		}
		for featureClass[s[i]] == fcNone {
			if i++; i == len(s) {
				return f
			}
		}
		switch featureClass[s[i]] {
		case fcDigit:
			if last == i-1 && i > 0 {
				run++
			} else {
				run = 1
				if last < 0 {
					card, phone, ip = 0, 0, 0
				} else {
					gap := s[last+1 : i]
					if len(gap) != 1 || gap[0] != ' ' && gap[0] != '-' {
						card = 0
					}
					if !isPhoneGap(gap) {
						phone = 0
					}
					if len(gap) == 1 && gap[0] == '.' {
						ip++
						f.ipv4Dots = max(f.ipv4Dots, ip)
					} else {
						ip = 0
					}
				}
			}
			last = i
			card++
			phone++
			f.maxDigitRun = max(f.maxDigitRun, run)
			f.cardDigits = max(f.cardDigits, card)
			f.phoneDigits = max(f.phoneDigits, phone)
			if run == 2 && i >= 3 && isAlpha(s[i-2]) && isAlpha(s[i-3]) {
				f.iban = true
			}
		case fcColon:
			if i-lastColon <= 5 && allHex(s[lastColon+1:i]) {
				f.ipv6 = true
			}
			lastColon = i
		case fcDot:
			f.dots++
		case fcAt:
			f.at = true
		case fcLBrack:
			f.lbrack = true
		case fcDash:
			f.dashes++
			if i > 0 && tokenSepAfter[s[i-1]] {
				f.token = true
			}
		case fcUnder:
			if i > 0 && tokenSepAfter[s[i-1]] {
				f.token = true
			}
		case fcA:
			if i+1 < len(s) && (s[i+1] == 'K' || s[i+1] == 'S' || s[i+1] == 'I') {
				f.token = true
			}
		case fcB:
			if i+6 <= len(s) && s[i+1]|0x20 == 'e' && s[i+2]|0x20 == 'a' && s[i+3]|0x20 == 'r' && s[i+4]|0x20 == 'e' && s[i+5]|0x20 == 'r' {
				f.token = true
			}
		case fcJ:
			if i >= 2 && s[i-2] == 'e' && s[i-1] == 'y' {
				f.jwt = true
			}
		case fcPlus:
			f.plus = true
		case fcBackslash:
			f.escape = true
			if i+1 < len(s) && s[i+1] == 'u' {
				f.uEscape = true
			}
		case fcHigh:
			f.nonASCII = true
		}
	}
	return f
}

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
	// kinds are the placeholder names without brackets, for recognising
	// placeholders already in the text.
	kinds map[string]bool
}

// NewMasker builds a Masker from the built-in detectors and m.Custom.
// Custom patterns whose Re is nil (not compiled by configs.Load) are
// compiled here; a pattern that does not compile is skipped (configs.Load
// refuses such configs).
func NewMasker(m configs.Masking) *Masker {
	mk := &Masker{kinds: map[string]bool{}}
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
	return mk
}

// add appends a detector (during construction only).
func (m *Masker) add(d detector) {
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

// pass runs every detector once on s, whose features are f, and leaves in f
// the features of the string it returns. buf is scratch space for spans;
// pass returns it, grown.
func (m *Masker) pass(s string, f *features, buf []span) (string, []span) {
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
		*f = scanFeatures(s)
	}
	return s, buf
}

// mayMatch reports whether any detector may match a string with features
// f: the disjunction of every detector's maybe, written out so that the
// common case (no detector can match) costs one expression.
func (m *Masker) mayMatch(f *features) bool {
	return m.ungated || f.at || f.token || f.iban || f.jwt && f.dots >= 2 || f.dashes >= 10 ||
		f.cardDigits >= 13 || f.ipv6 || f.ipv4Dots >= 3 || f.phoneDigits >= 9 || f.plus && f.phoneDigits >= 8 ||
		m.customs > 0 && f.maxDigitRun >= m.customDigits
}

// dropPlaceholderOverlaps removes spans that touch a placeholder already in s,
// so that masked text is never masked again (a custom pattern such as
// [A-Z]+ must not turn [EMAIL] into [[NAME]]).
func (m *Masker) dropPlaceholderOverlaps(s string, spans []span) []span {
	var ph []span
	for i := 0; i < len(s); i++ {
		if s[i] != '[' {
			continue
		}
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

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isHex(c byte) bool   { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

// isB64URL reports base64url and token characters.
func isB64URL(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

// before returns the byte before i, or 0.
func before(s string, i int) byte {
	if i > 0 {
		return s[i-1]
	}
	return 0
}

// at returns s[i], or 0 past the end.
func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// ---- private key blocks ----------------------------------------------------

func findPrivateKeys(s string, dst []span) []span {
	const begin = "-----BEGIN "
	for off := 0; ; {
		i := strings.Index(s[off:], begin)
		if i < 0 {
			return dst
		}
		i += off
		hdrEnd := strings.Index(s[i+len(begin):min(len(s), i+len(begin)+64)], "-----")
		if hdrEnd < 0 || !strings.Contains(s[i+len(begin):i+len(begin)+hdrEnd], "PRIVATE KEY") {
			off = i + len(begin)
			continue
		}
		e := len(s) // a block without its END line is masked to the end
		if j := strings.Index(s[i:], "-----END "); j >= 0 {
			j += i + len("-----END ")
			if k := strings.Index(s[j:], "-----"); k >= 0 {
				e = j + k + len("-----")
			}
		}
		dst = append(dst, span{i, e})
		off = e
	}
}

// ---- JWT ----------------------------------------------------------------------

func findJWTs(s string, dst []span) []span {
	for off := 0; ; {
		i := strings.Index(s[off:], "eyJ")
		if i < 0 {
			return dst
		}
		i += off
		off = i + 3
		if isB64URL(before(s, i)) || before(s, i) == '.' {
			continue
		}
		// Up to five dot-separated base64url segments (JWS has 3, JWE 5).
		e, segs := i, 0
		var segEnds [5]int
		for segs < 5 {
			j := e
			for j < len(s) && isB64URL(s[j]) {
				j++
			}
			if j == e && segs < 2 {
				break
			}
			segEnds[segs] = j
			segs++
			e = j
			if at(s, e) != '.' || segs == 5 {
				break
			}
			e++
		}
		if segs < 3 && !(segs == 2 && at(s, segEnds[1]) == '.') {
			continue
		}
		end := segEnds[segs-1]
		if segs == 2 { // "header.payload." with an empty signature
			end = segEnds[1] + 1
		}
		if segEnds[0]-i < 10 || !jwtHeader(s[i:segEnds[0]]) {
			continue
		}
		dst = append(dst, span{i, end})
		off = end
	}
}

// jwtHeader reports whether seg decodes to a JSON object naming alg or typ.
func jwtHeader(seg string) bool {
	if len(seg) > 2048 {
		seg = seg[:2048]
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		// A truncated final quantum still starts with the header's bytes.
		b, _ = base64.RawURLEncoding.DecodeString(seg[:len(seg)/4*4])
	}
	h := string(b)
	return strings.HasPrefix(h, "{") && (strings.Contains(h, `"alg"`) || strings.Contains(h, `"typ"`) || strings.Contains(h, `"enc"`))
}

// ---- secret tokens ------------------------------------------------------------

// tokenStart marks the first bytes of the token prefixes findTokens knows.
var tokenStart = [256]bool{'s': true, 'r': true, 'A': true, 'g': true, 'x': true, 'B': true, 'b': true}

func findTokens(s string, dst []span) []span {
	for i := 0; i+4 <= len(s); i++ {
		if !tokenStart[s[i]] {
			continue
		}
		if isAlnum(before(s, i)) || before(s, i) == '_' {
			continue
		}
		if sp, ok := bearerAt(s, i); ok {
			dst = append(dst, sp)
			i = sp.e - 1
			continue
		}
		if e := tokenAt(s, i); e > i {
			dst = append(dst, span{i, e})
			i = e - 1
		}
	}
	return dst
}

// run returns the end of the run of bytes from i that satisfy ok.
func run(s string, i int, ok func(byte) bool) int {
	for i < len(s) && ok(s[i]) {
		i++
	}
	return i
}

func isTokenBody(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }
func isAlnumUnder(c byte) bool {
	return isAlnum(c) || c == '_'
}
func isUpperDigit(c byte) bool { return isDigit(c) || (c >= 'A' && c <= 'Z') }

// tokenAt returns the end of a secret token starting at i, or i.
func tokenAt(s string, i int) int {
	r := s[i:]
	switch {
	case strings.HasPrefix(r, "sk-"): // OpenAI sk-…, sk-proj-…, Anthropic sk-ant-…
		// 20+ characters, or 8+ with a digit: short test and proxy keys
		// (sk-test-1234) are keys too, "sk-learn" is not (issue 12.4).
		e := run(s, i+3, isTokenBody)
		if n := e - (i + 3); n >= 20 || n >= 8 && strings.ContainsAny(s[i+3:e], "0123456789") {
			return e
		}
	case strings.HasPrefix(r, "sk_live_"), strings.HasPrefix(r, "sk_test_"),
		strings.HasPrefix(r, "rk_live_"), strings.HasPrefix(r, "rk_test_"): // Stripe
		if e := run(s, i+8, isAlnum); e-(i+8) >= 16 {
			return e
		}
	case strings.HasPrefix(r, "AKIA"), strings.HasPrefix(r, "ASIA"): // AWS access key IDs
		if e := run(s, i+4, isUpperDigit); e-(i+4) == 16 && !isAlnum(at(s, e)) {
			return e
		}
	case strings.HasPrefix(r, "AIza"): // Google API keys
		if e := run(s, i+4, isTokenBody); e-(i+4) >= 30 {
			return e
		}
	case len(r) > 4 && r[0] == 'g' && r[1] == 'h' && strings.IndexByte("pousr", r[2]) >= 0 && r[3] == '_': // GitHub
		if e := run(s, i+4, isAlnum); e-(i+4) >= 30 {
			return e
		}
	case strings.HasPrefix(r, "github_pat_"):
		if e := run(s, i+11, isAlnumUnder); e-(i+11) >= 22 {
			return e
		}
	case len(r) > 5 && strings.HasPrefix(r, "xox") && strings.IndexByte("abposr", r[3]) >= 0 && r[4] == '-': // Slack
		if e := run(s, i+5, isTokenBody); e-(i+5) >= 10 {
			return e
		}
	}
	return i
}

func isBearerChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("-._~+/=", c) >= 0
}

// bearerAt matches "Bearer <token>" at i and returns the token's span. The
// token must look like a credential (a digit, or 20+ characters of mixed
// case) so that prose such as "the bearer instrument" is left alone.
func bearerAt(s string, i int) (span, bool) {
	if len(s)-i < 8 || !strings.EqualFold(s[i:i+6], "bearer") {
		return span{}, false
	}
	j := i + 6
	k := run(s, j, func(c byte) bool { return c == ' ' || c == '\t' })
	if k == j {
		return span{}, false
	}
	e := run(s, k, isBearerChar)
	n := e - k
	if n < 8 {
		return span{}, false
	}
	var digit, upper, lower bool
	for _, c := range []byte(s[k:e]) {
		switch {
		case isDigit(c):
			digit = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		}
	}
	if !digit && !(n >= 20 && upper && lower) {
		return span{}, false
	}
	return span{k, e}, true
}

// ---- email -------------------------------------------------------------------

func isLocalChar(c byte) bool { return isAlnum(c) || strings.IndexByte("._%+-", c) >= 0 }
func isDomainChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '-'
}

func findEmails(s string, dst []span) []span {
	last := 0
	for off := 0; ; {
		i := strings.IndexByte(s[off:], '@')
		if i < 0 {
			return dst
		}
		i += off
		off = i + 1
		b := i
		for b > last && isLocalChar(s[b-1]) {
			b--
		}
		for b < i && s[b] == '.' {
			b++
		}
		if b == i {
			continue
		}
		e := emailDomainEnd(s, i+1)
		if e < 0 {
			continue
		}
		dst = append(dst, span{b, e})
		last, off = e, e
	}
}

// emailDomainEnd returns the end of the longest domain at i (labels of
// letters, digits and '-', at least two, ending in an alphabetic TLD of 2+
// letters not followed by a letter or digit), or -1.
func emailDomainEnd(s string, i int) int {
	end := run(s, i, isDomainChar)
	best := -1
	labelStart := i
	for j := i; j <= end; j++ {
		if j < end && s[j] != '.' {
			continue
		}
		if j == labelStart { // empty label
			break
		}
		if labelStart > i { // a label after a dot may be the TLD
			k := run(s, labelStart, isAlpha)
			if k-labelStart >= 2 && !isAlnum(at(s, k)) {
				best = k
			}
		}
		labelStart = j + 1
	}
	return best
}

// ---- IBAN -----------------------------------------------------------------------

// ibanLen is the IBAN length of each country (ISO 13616 registry).
var ibanLen = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
	"LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
	"NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
	"SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 32
	}
	return c
}

func findIBANs(s string, dst []span) []span {
	for i := 0; i+15 <= len(s); i++ {
		if !isAlpha(s[i]) || !isAlpha(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) || isAlnum(before(s, i)) {
			continue
		}
		n := ibanLen[string([]byte{upper(s[i]), upper(s[i+1])})]
		if n == 0 {
			continue
		}
		var buf [34]byte
		got, j := 0, i
		for got < n && j < len(s) {
			c := s[j]
			switch {
			case isAlnum(c):
				buf[got] = upper(c)
				got++
				j++
			case (c == ' ' || c == '-') && got > 0 && j+1 < len(s) && isAlnum(s[j+1]):
				j++
			default:
				got = -1 // stop
			}
			if got < 0 {
				break
			}
		}
		if got != n || isAlnum(at(s, j)) || !ibanValid(buf[:n]) {
			continue
		}
		dst = append(dst, span{i, j})
		i = j - 1
	}
	return dst
}

// ibanValid checks the ISO 7064 mod-97 checksum of an upper-case IBAN.
func ibanValid(b []byte) bool {
	rem := 0
	add := func(c byte) bool {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
		return true
	}
	for _, c := range b[4:] {
		if !add(c) {
			return false
		}
	}
	for _, c := range b[:4] {
		if !add(c) {
			return false
		}
	}
	return rem == 1
}

// ---- payment cards ---------------------------------------------------------------

func findCards(s string, dst []span) []span {
	// A run is digits joined by single spaces or dashes; its groups are the
	// digit sequences between separators.
	type group struct{ s, e int }
	var groups [24]group
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		ng, j := 0, i
		overflow := false
		for {
			e := run(s, j, isDigit)
			if ng == len(groups) {
				overflow = true
				break
			}
			groups[ng] = group{j, e}
			ng++
			j = e
			if (at(s, j) == ' ' || at(s, j) == '-') && isDigit(at(s, j+1)) {
				j++
				continue
			}
			break
		}
		runEnd := j
		// Digits glued to letters belong to an identifier (or to an IBAN
		// that failed its checksum), not to a card.
		if overflow || isAlpha(before(s, i)) || isAlpha(at(s, runEnd)) {
			i = runEnd - 1
			continue
		}
		// Leftmost, longest window of whole groups holding 13–19 digits
		// that passes Luhn. A single group longer than 19 digits is part
		// of a longer number, not a card.
		for a := 0; a < ng; {
			found := false
			for b := ng - 1; b >= a; b-- {
				nd := 0
				for k := a; k <= b; k++ {
					nd += groups[k].e - groups[k].s
				}
				if nd < 13 || nd > 19 || !luhn(s[groups[a].s:groups[b].e]) {
					continue
				}
				dst = append(dst, span{groups[a].s, groups[b].e})
				a = b + 1
				found = true
				break
			}
			if !found {
				a++
			}
		}
		i = runEnd - 1
	}
	return dst
}

// luhn checks the Luhn checksum of the digits in s (other bytes skipped).
func luhn(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// ---- IP addresses -------------------------------------------------------------------

func isIPv6Char(c byte) bool { return isHex(c) || c == ':' || c == '.' }

func findIPv6(s string, dst []span) []span {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isHex(c) && c != ':' {
			continue
		}
		e := run(s, i, isIPv6Char)
		if p := before(s, i); isAlnum(p) || p == '_' || p == '.' || p == ':' || p == '-' {
			i = e - 1
			continue
		}
		cand := s[i:e]
		for len(cand) > 0 && (cand[len(cand)-1] == '.' || cand[len(cand)-1] == ':' && !strings.HasSuffix(cand, "::")) {
			cand = cand[:len(cand)-1]
		}
		end := i + len(cand)
		if strings.Count(cand, ":") >= 2 && !isAlnum(at(s, end)) && at(s, end) != '_' && ipv6Like(cand) {
			dst = append(dst, span{i, end})
		}
		i = e - 1
	}
	return dst
}

// ipv6Like reports a valid IPv6 address with at least two non-empty groups
// (so "::" and "::1" alone, or C++-like "a::b" stay only if they parse and
// carry two groups).
func ipv6Like(c string) bool {
	a, err := netip.ParseAddr(c)
	if err != nil || !a.Is6() {
		return false
	}
	groups := 0
	for g := range strings.SplitSeq(c, ":") {
		if g != "" {
			groups++
		}
	}
	return groups >= 2
}

func isIPv4Char(c byte) bool { return isDigit(c) || c == '.' }

func findIPv4(s string, dst []span) []span {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		e := run(s, i, isIPv4Char)
		if p := before(s, i); isAlnum(p) || p == '.' || p == '_' {
			i = e - 1
			continue
		}
		cand := s[i:e]
		if strings.HasSuffix(cand, ".") && !strings.HasSuffix(cand, "..") {
			cand = cand[:len(cand)-1]
		}
		end := i + len(cand)
		if strings.Count(cand, ".") == 3 && !isAlnum(at(s, end)) && at(s, end) != '_' {
			if a, err := netip.ParseAddr(cand); err == nil && a.Is4() {
				dst = append(dst, span{i, end})
			}
		}
		i = e - 1
	}
	return dst
}

// ---- phone numbers -------------------------------------------------------------------

// findPhones finds international numbers (+ then 8–15 digits, optionally
// grouped by spaces, dashes, dots or parentheses) and grouped national
// numbers: North American 3-3-4 (optionally 1 first, area code optionally
// in parentheses) and trunk-prefixed numbers starting with 0 in two or more
// groups with 9–12 digits.
func findPhones(s string, dst []span) []span {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '+' || c == '(' || isDigit(c)) {
			continue
		}
		if c == '(' && at(s, i+1) == '+' {
			continue // "(+1 415 555 2671)": the number starts at '+'
		}
		if p := before(s, i); isAlnum(p) || p == '_' || p == '.' || p == '-' || p == '+' || p == '/' || p == ',' {
			continue
		}
		// A phone does not start inside a longer grouped number.
		if p := before(s, i); p == ' ' && i >= 2 && isDigit(s[i-2]) {
			continue
		}
		e, ok := phoneAt(s, i)
		if ok {
			dst = append(dst, span{i, e})
			i = e - 1
			continue
		}
		// Skip the rest of this digit run: a phone never starts inside one.
		i = run(s, i, func(c byte) bool { return isDigit(c) || c == '+' || c == '(' }) - 1
		if i < 0 {
			i = 0
		}
	}
	return dst
}

func phoneAt(s string, i int) (int, bool) {
	plus := s[i] == '+'
	j := i
	if plus {
		j++
	}
	var groups [16]int
	ng, digits := 0, 0
	paren := -1 // group index that was in parentheses
	for ng < len(groups) {
		open := false
		if at(s, j) == '(' {
			open = true
			j++
		}
		e := run(s, j, isDigit)
		if e == j {
			return 0, false
		}
		groups[ng] = e - j
		digits += e - j
		if open {
			if at(s, e) != ')' {
				return 0, false
			}
			paren = ng
			e++
		}
		ng++
		j = e
		// One separator (a space may follow a closing parenthesis).
		k := j
		if c := at(s, k); c == ' ' || c == '-' || c == '.' {
			k++
		}
		if isDigit(at(s, k)) || (at(s, k) == '(' && isDigit(at(s, k+1))) {
			if k == j && !open {
				break // digits directly after digits cannot happen
			}
			j = k
			continue
		}
		break
	}
	end := j
	if c := at(s, end); isAlnum(c) || c == '_' || c == '@' || (c == '.' || c == '-') && isDigit(at(s, end+1)) {
		return 0, false
	}
	if plus {
		return end, digits >= 8 && digits <= 15
	}
	if ng == 1 && paren < 0 {
		return end, bareNationalPhone(s, i, digits)
	}
	if ng < 2 {
		return 0, false
	}
	if s[i] == '(' && paren != 0 {
		return 0, false
	}
	// North American: [1] (3) 3 4.
	g := groups[:ng]
	if len(g) == 4 && g[0] == 1 && s[i] == '1' {
		g = g[1:]
	}
	if len(g) == 3 && g[0] == 3 && g[1] == 3 && g[2] == 4 {
		return end, true
	}
	// Trunk prefix 0: two or more groups of 2–8 digits, 9–12 digits.
	first := i
	if s[first] == '(' {
		first++
	}
	if s[first] == '0' && digits >= 9 && digits <= 12 {
		for _, n := range groups[:ng] {
			if n < 2 || n > 8 {
				return 0, false
			}
		}
		return end, true
	}
	return 0, false
}

// bareNationalPhone reports whether the run of n digits at i, written
// without any grouping, is a national phone number (issue 12.14): a trunk
// prefix 0 and 10–11 digits (07700900123, 0201234567), or a North
// American number (4155552671, 14155552671) right after a word that
// names a phone. Other bare runs (order numbers, IDs) are left alone.
func bareNationalPhone(s string, i, n int) bool {
	d := s[i : i+n]
	if (n == 10 || n == 11) && d[0] == '0' && d[1] != '0' {
		return true
	}
	if n == 11 && d[0] == '1' {
		d = d[1:]
	} else if n != 10 {
		return false
	}
	// NANP: area code and exchange start with 2–9.
	return d[0] >= '2' && d[3] >= '2' && phoneWordBefore(s, i)
}

// phoneWords are the words that, shortly before a bare number, make it a
// phone number.
var phoneWords = []string{"phone", "tel", "call", "mobile", "cell", "sms", "text me", "whatsapp", "fax", "contact", "ring"}

// phoneWordBefore reports whether one of phoneWords is in the 24 bytes
// before i.
func phoneWordBefore(s string, i int) bool {
	w := strings.ToLower(s[max(0, i-24):i])
	for _, p := range phoneWords {
		if strings.Contains(w, p) {
			return true
		}
	}
	return false
}
