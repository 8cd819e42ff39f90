package capture

import "strings"

// PlaceholderNumber replaces a long run of digits in a request ID (see
// maskID).
const PlaceholderNumber = "[NUMBER]"

// minIDDigits is the shortest digit run maskID replaces: national phone
// numbers have 9 or more digits, cards and most national IDs more.
const minIDDigits = 9

// idHeaders are the captured headers that carry a client request ID.
var idHeaders = map[string]bool{"x-request-id": true, "x-client-request-id": true}

// maskID masks a client-supplied request ID (issue 12.14). An ID is
// opaque: the detectors' context rules (a phone starts after a space, a
// card is Luhn-valid) do not hold inside "cust-4155552671-7" or a bare
// order number, so after the detectors every remaining run of 9 or more
// digits, with single '-', '.', ' ' or '+' between them, becomes
// [NUMBER]. Lookups do not need the stored form: they go through the keyed
// hash of the raw ID.
func (m *Masker) maskID(id string) string {
	s := m.String(id)
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isDigit(s[i]) && !(s[i] == '+' && isDigit(at(s, i+1))) {
			i++
			continue
		}
		start, digits, j := i, 0, i
		if s[j] == '+' {
			j++
		}
		for j < len(s) {
			if isDigit(s[j]) {
				digits++
				j++
				continue
			}
			if c := s[j]; (c == '-' || c == '.' || c == ' ' || c == '+') && isDigit(at(s, j+1)) {
				j++
				continue
			}
			break
		}
		if digits >= minIDDigits {
			b.WriteString(s[last:start])
			b.WriteString(PlaceholderNumber)
			last = j
		}
		i = j
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
