package capture

// features are counted in one pass over a string so that most detectors are
// skipped without running. Every field is a necessary condition of some
// detector's match (see detector.maybe): a string whose features rule out every
// detector is kept as it is without running any.
type features struct {
	dots int
	// keyDashes: five dashes in a row, as a private key block's
	// "-----BEGIN" has (a count of dashes opened the gate on any text
	// with a few dates in it: issue 15).
	keyDashes bool
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
	// one of the letters that end sk, rk, xox?, gh?, github; "AKIA",
	// "ASIA", "AIza"; "bearer" in any case. (Testing only "AI" opened
	// this gate on every [EMAIL] placeholder and every "OpenAI" in prose,
	// and findTokens then read the whole string twice: issue 15.)
	token bool
	// iban: two letters directly followed by two digits.
	iban bool
	// escape: a backslash (in a JSON string token: decoding changes the
	// string); uEscape: a backslash followed by 'u'. nonASCII: a byte
	// >= 0x80.
	escape, uEscape, nonASCII bool
}

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
			if i >= 4 && s[i-1] == '-' && s[i-2] == '-' && s[i-3] == '-' && s[i-4] == '-' {
				f.keyDashes = true
			}
			if i > 0 && tokenSepAfter[s[i-1]] {
				f.token = true
			}
		case fcUnder:
			if i > 0 && tokenSepAfter[s[i-1]] {
				f.token = true
			}
		case fcA: // AKIA, ASIA, AIza; not the "AI" of [EMAIL] or prose
			if i+3 < len(s) && (s[i+2] == 'I' && s[i+3] == 'A' && (s[i+1] == 'K' || s[i+1] == 'S') ||
				s[i+1] == 'I' && s[i+2] == 'z' && s[i+3] == 'a') {
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
