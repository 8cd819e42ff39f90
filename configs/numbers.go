package configs

import (
	"strconv"
)

// maxExactInt is 2^53: every integer up to it has an exact float64, so it
// survives a JSON decode into any (which makes a float64) unchanged.
const maxExactInt = 1 << 53

// inexactInt finds an integer in a YAML-decoded value that a JSON round
// trip through any would change: flags are frozen into incident
// snapshots, cloned and re-hashed through JSON, and 9007199254740993
// comes back as 9007199254740992, so the frozen hash could never be
// verified again (issue 12.13). It returns the path below v (".a[2]"),
// the number's text and true for the first one found.
func inexactInt(v any) (path, num string, found bool) {
	switch x := v.(type) {
	case int:
		return "", strconv.Itoa(x), x > maxExactInt || x < -maxExactInt
	case int64:
		return "", strconv.FormatInt(x, 10), x > maxExactInt || x < -maxExactInt
	case uint64:
		return "", strconv.FormatUint(x, 10), x > maxExactInt
	case uint:
		return "", strconv.FormatUint(uint64(x), 10), x > maxExactInt
	case map[string]any:
		for k, e := range x {
			if p, n, ok := inexactInt(e); ok {
				return "." + k + p, n, true
			}
		}
	case []any:
		for i, e := range x {
			if p, n, ok := inexactInt(e); ok {
				return "[" + strconv.Itoa(i) + "]" + p, n, true
			}
		}
	}
	return "", "", false
}
