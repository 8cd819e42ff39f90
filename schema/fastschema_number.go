package schema

import (
	"math/big"
	"math/bits"
)

// Exact decimal arithmetic for the direct validator (fastschema.go). The
// library compares numbers as big.Rat parsed from the number's text, so
// 0.30000000000000001 > 0.3 and 1.0 is an integer; comparing float64s would
// not give the same verdicts. A JSON number is a finite decimal, and so is
// every bound the library parsed from the schema, so comparing decimals
// digit by digit is exact without big.Rat's allocations.

// maxDecDigits bounds the significant digits of a decimal the validator
// handles itself; a number with more (rare in a reply) is left to the
// library.
const maxDecDigits = 40

// maxDecExp bounds the decimal exponent the validator handles itself.
// big.Rat.SetString refuses exponents beyond 1e6 (the library then
// panics, and the check fails); numbers anywhere near that are left to the
// library, which decides them as it always did.
const maxDecExp = 10000

// decimal is the value ±0.d[0]d[1]…d[n-1] × 10^exp, with d[0] != 0 and
// d[n-1] != 0 (n == 0 is zero, whatever its sign).
type decimal struct {
	neg bool
	n   int
	exp int
	d   [maxDecDigits]byte
}

// parseDecimal reads s, a valid JSON number token, into x. It reports
// false when the number is outside what the validator handles (too many
// significant digits, too large an exponent).
func parseDecimal(s string, x *decimal) bool {
	*x = decimal{}
	i := 0
	if i < len(s) && s[i] == '-' {
		x.neg = true
		i++
	}
	if len(s) > 2*maxDecExp {
		return false
	}
	// The digits of the mantissa without the point: s[ms:me], with the
	// point after pointAt digits.
	ms := i
	for i < len(s) && isDigitByte(s[i]) {
		i++
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < len(s) && s[i] == '.' {
		i++
		fracStart = i
		for i < len(s) && isDigitByte(s[i]) {
			i++
		}
		fracEnd = i
	}
	e := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		for ; i < len(s); i++ {
			e = e*10 + int(s[i]-'0')
			if e > maxDecExp {
				return false
			}
		}
		if eneg {
			e = -e
		}
	}
	// digit k of the mantissa (0-based, the integer digits then the
	// fraction digits).
	nInt, nFrac := intEnd-ms, fracEnd-fracStart
	digit := func(k int) byte {
		if k < nInt {
			return s[ms+k]
		}
		return s[fracStart+k-nInt]
	}
	total := nInt + nFrac
	first, last := -1, -1
	for k := range total {
		if digit(k) != '0' {
			if first < 0 {
				first = k
			}
			last = k
		}
	}
	if first < 0 {
		x.neg = false
		return true // zero
	}
	x.n = last - first + 1
	if x.n > maxDecDigits {
		return false
	}
	for k := range x.n {
		x.d[k] = digit(first+k) - '0'
	}
	// The point sits after nInt digits: 0.d… × 10^(nInt-first+e).
	x.exp = nInt - first + e
	return x.exp <= maxDecExp && x.exp >= -maxDecExp
}

func isDigitByte(c byte) bool { return c >= '0' && c <= '9' }

// decimalFromRat converts r, a bound the library parsed from the schema,
// to a decimal. It reports false when r is not a finite decimal the
// validator handles.
func decimalFromRat(r *big.Rat, x *decimal) bool {
	den := new(big.Int).Set(r.Denom())
	twos := den.TrailingZeroBits()
	den.Rsh(den, twos)
	fives := uint(0)
	five, m := big.NewInt(5), new(big.Int)
	for den.Cmp(big.NewInt(1)) != 0 {
		q, rem := new(big.Int).QuoRem(den, five, m)
		if rem.Sign() != 0 || fives > 2*maxDecExp {
			return false
		}
		den, fives = q, fives+1
	}
	prec := int(max(twos, fives))
	if prec > maxDecExp {
		return false
	}
	return parseDecimal(r.FloatString(prec), x)
}

// cmpDecimal returns -1, 0 or +1 as a <, ==, > b.
func cmpDecimal(a, b *decimal) int {
	sa, sb := a.sign(), b.sign()
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	if sa == 0 {
		return 0
	}
	c := cmpMagnitude(a, b)
	if sa < 0 {
		return -c
	}
	return c
}

func (x *decimal) sign() int {
	switch {
	case x.n == 0:
		return 0
	case x.neg:
		return -1
	}
	return 1
}

// cmpMagnitude compares |a| and |b|, both non-zero.
func cmpMagnitude(a, b *decimal) int {
	if a.exp != b.exp {
		if a.exp < b.exp {
			return -1
		}
		return 1
	}
	for k := 0; k < a.n && k < b.n; k++ {
		if a.d[k] != b.d[k] {
			if a.d[k] < b.d[k] {
				return -1
			}
			return 1
		}
	}
	switch {
	case a.n < b.n:
		return -1
	case a.n > b.n:
		return 1
	}
	return 0
}

// isInt reports whether x is an integer, as big.Rat.IsInt does.
func (x *decimal) isInt() bool { return x.n == 0 || x.exp >= x.n }

// multipleOf reports whether x/m is an integer (m > 0), as the library's
// big.Rat quotient does; ok is false when the digits are too many for
// 64-bit arithmetic, and the library decides.
func (x *decimal) multipleOf(m *decimal) (yes, ok bool) {
	if x.n == 0 {
		return true, true
	}
	if x.n > 19 || m.n > 19 || m.n == 0 {
		return false, false
	}
	// x = X × 10^(x.exp-x.n), m = M × 10^(m.exp-m.n).
	X, M := digitsValue(x), digitsValue(m)
	k := (x.exp - x.n) - (m.exp - m.n)
	if k >= 0 {
		// M must divide X × 10^k.
		r := X % M
		p := uint64(10) % M
		for ; k > 0; k >>= 1 {
			if k&1 == 1 {
				r = mulMod(r, p, M)
			}
			p = mulMod(p, p, M)
		}
		return r == 0, true
	}
	// M × 10^-k must divide X, which has at most 19 digits.
	d := M
	for ; k < 0; k++ {
		hi, lo := bits.Mul64(d, 10)
		if hi != 0 {
			return false, true // larger than X
		}
		d = lo
	}
	return X%d == 0, true
}

func digitsValue(x *decimal) uint64 {
	var v uint64
	for k := range x.n {
		v = v*10 + uint64(x.d[k])
	}
	return v
}

func mulMod(a, b, m uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	_, r := bits.Div64(hi%m, lo, m)
	return r
}
