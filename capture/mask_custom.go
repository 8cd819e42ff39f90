package capture

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// customPrefilter is a cheap, sound test run before a custom pattern's
// regular expression: every match of the pattern contains each of its
// literals and, for each run, at least min consecutive bytes from set. A
// string that fails it cannot match, so the (slow) regexp is skipped. For
// `\b\d{12}\b` it asks for a run of 12 digits.
type customPrefilter struct {
	literals []string
	runs     []byteRun
}

type byteRun struct {
	set *[256]bool
	min int
}

// newCustomPrefilter derives the prefilter from the pattern's syntax tree.
// Anything it does not understand adds no condition.
func newCustomPrefilter(re *regexp.Regexp) *customPrefilter {
	p := &customPrefilter{}
	if lit, _ := re.LiteralPrefix(); lit != "" {
		p.literals = append(p.literals, lit)
	}
	t, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return p
	}
	p.collect(t)
	return p
}

func (p *customPrefilter) collect(t *syntax.Regexp) {
	switch t.Op {
	case syntax.OpCapture:
		p.collect(t.Sub[0])
	case syntax.OpLiteral:
		if t.Flags&syntax.FoldCase == 0 {
			p.literals = append(p.literals, string(t.Rune))
		}
	case syntax.OpConcat:
		var cur *[256]bool
		n := 0
		flush := func() {
			if cur != nil && n >= 2 {
				p.runs = append(p.runs, byteRun{cur, n})
			}
			cur, n = nil, 0
		}
		for _, s := range t.Sub {
			set, m, ok := classRun(s)
			if !ok {
				flush()
				p.collect(s)
				continue
			}
			if cur != nil && *cur == *set {
				n += m
			} else {
				flush()
				cur, n = set, m
			}
			if !isExactRun(s) { // x+ or x{m,} ends a run: more may follow, none is required
				flush()
			}
		}
		flush()
	case syntax.OpPlus, syntax.OpRepeat:
		if set, m, ok := classRun(t); ok && m >= 2 {
			p.runs = append(p.runs, byteRun{set, m})
		} else if t.Op == syntax.OpPlus || t.Min >= 1 {
			p.collect(t.Sub[0])
		}
	}
}

// classRun reports whether t is an ASCII character class (or a repetition of
// one) and the minimum number of its bytes a match holds.
func classRun(t *syntax.Regexp) (*[256]bool, int, bool) {
	min := 1
	switch t.Op {
	case syntax.OpPlus:
		t = t.Sub[0]
	case syntax.OpRepeat:
		if t.Min < 1 {
			return nil, 0, false
		}
		min = t.Min
		t = t.Sub[0]
	}
	var set [256]bool
	switch t.Op {
	case syntax.OpCharClass:
		for i := 0; i+1 < len(t.Rune); i += 2 {
			lo, hi := t.Rune[i], t.Rune[i+1]
			if hi > 0x7f {
				return nil, 0, false
			}
			for r := lo; r <= hi; r++ {
				set[r] = true
			}
		}
	case syntax.OpLiteral:
		if len(t.Rune) != 1 || t.Rune[0] > 0x7f || t.Flags&syntax.FoldCase != 0 {
			return nil, 0, false
		}
		set[t.Rune[0]] = true
	default:
		return nil, 0, false
	}
	return &set, min, true
}

// isExactRun reports whether t matches a fixed number of characters.
func isExactRun(t *syntax.Regexp) bool {
	switch t.Op {
	case syntax.OpPlus:
		return false
	case syntax.OpRepeat:
		return t.Max == t.Min
	}
	return true
}

// maybe reports whether s may contain a match.
func (p *customPrefilter) maybe(s string) bool {
	for _, l := range p.literals {
		if !strings.Contains(s, l) {
			return false
		}
	}
	for _, r := range p.runs {
		if !hasRun(s, r.set, r.min) {
			return false
		}
	}
	return true
}

func hasRun(s string, set *[256]bool, min int) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if set[s[i]] {
			n++
			if n >= min {
				return true
			}
		} else {
			n = 0
		}
	}
	return false
}

// minDigitRun is the longest run of consecutive ASCII digits every match
// must hold (0: no such condition), so that the masker can test it against
// the features it already counted instead of scanning the string again.
func (p *customPrefilter) minDigitRun() int {
	var digits [256]bool
	for c := '0'; c <= '9'; c++ {
		digits[c] = true
	}
	n := 0
	for _, r := range p.runs {
		if *r.set == digits {
			n = max(n, r.min)
		}
	}
	return n
}
