package capture

import (
	"net/netip"
	"strings"
)

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
