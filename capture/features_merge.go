package capture

import "strings"

// merge adds to f the features of a placeholder (g) written into the
// string f describes, in place of a span. The result over-approximates the
// features of the new string: every count is at least, and every flag at
// least as set as, what a scan of it would give. That suffices for the
// gates, which are necessary conditions: a detector whose gate is open
// under an over-approximation only runs and finds what it would have
// found anyway. The over-approximation holds because a placeholder starts
// with '[' and ends with ']', bytes that end every chain a feature follows
// (digit groups and their gaps, hex between colons, the letters before a
// token's '-' or '_', "eyJ", "bearer", the letters before an IBAN's
// digits): nothing in the text before or after it can combine with what
// it replaced or holds, so the new string's features are those of the
// kept text, no more than f's, merged with the placeholder's own.
func (f *features) merge(g *features) {
	f.dots += g.dots
	f.keyDashes = f.keyDashes || g.keyDashes
	f.maxDigitRun = max(f.maxDigitRun, g.maxDigitRun)
	f.cardDigits = max(f.cardDigits, g.cardDigits)
	f.phoneDigits = max(f.phoneDigits, g.phoneDigits)
	f.ipv4Dots = max(f.ipv4Dots, g.ipv4Dots)
	f.ipv6 = f.ipv6 || g.ipv6
	f.at = f.at || g.at
	f.lbrack = f.lbrack || g.lbrack
	f.plus = f.plus || g.plus
	f.jwt = f.jwt || g.jwt
	f.token = f.token || g.token
	f.iban = f.iban || g.iban
	f.escape = f.escape || g.escape
	f.uEscape = f.uEscape || g.uEscape
	f.nonASCII = f.nonASCII || g.nonASCII
}

// settle narrows f, over-approximated by pass's replacements, for the
// next pass (or maskWith's fixed-point test) without reading s byte by
// byte where it can. The detectors whose gates are still open decide: the
// email, JWT and private-key finders, and a custom pattern with a literal
// every match holds, jump through s with vectorised searches (IndexByte,
// Index), so running them again costs less than a feature scan; their
// features are recounted the same way. Any other open gate (the number,
// IBAN, IP and token finders read every byte) makes settle scan s again,
// as the pass did after every replacement before (issue 15).
func (m *Masker) settle(s string, f *features) {
	for i := range m.detectors {
		d := &m.detectors[i]
		if !d.maybe(f) {
			continue
		}
		switch {
		case d.kind == detEmail, d.kind == detJWT, d.kind == detPrivateKey:
		case d.kind == detCustom && len(d.pf.literals) > 0:
		default:
			*f = scanFeatures(s)
			return
		}
	}
	if f.at {
		f.at = strings.IndexByte(s, '@') >= 0
	}
	if f.jwt && f.dots >= 2 {
		f.jwt = strings.Contains(s, "eyJ")
		f.dots = strings.Count(s, ".")
	}
	if f.keyDashes {
		f.keyDashes = strings.Contains(s, "-----")
	}
}
