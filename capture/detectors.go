package capture

import (
	"encoding/base64"
	"strings"
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

func isHex(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

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
