package configs

import (
	"math"
	"path"
	"slices"
	"strings"
)

// shadowIndex finds, for a route's match glob, the first earlier glob (in
// config order) that globCovers it, without comparing it with every
// earlier glob: Warnings over 10,000 glob routes took 20 s as pairs, which
// `cairn serve` and `cairn check` paid at every start (issue 15). It gives
// the same answer as trying globCovers on each earlier glob in order.
type shadowIndex struct {
	globs []string        // earlier globs; a glob's order is its position
	exact map[string]int  // glob → first order
	pre   lenIndex[int]   // "p*" globs (p without meta) by p → first order
	suf   lenIndex[int]   // "*s" globs by s → first order
	lit   lenIndex[[]int] // every glob by its literal prefix or suffix → orders
	rest  []int           // globs with neither, in order
}

// lenIndex is a map from strings to values with the distinct key lengths,
// so that a lookup tries each prefix or suffix of a name only at a length
// some key has.
type lenIndex[V any] struct {
	m    map[string]V
	lens []int // ascending
}

func (x *lenIndex[V]) put(k string, v V) {
	if x.m == nil {
		x.m = map[string]V{}
	}
	if i, found := slices.BinarySearch(x.lens, len(k)); !found {
		x.lens = slices.Insert(x.lens, i, len(k))
	}
	x.m[k] = v
}

func newShadowIndex() *shadowIndex { return &shadowIndex{exact: map[string]int{}} }

// globMeta are the bytes with a meaning in path.Match syntax; a glob's
// literal prefix and suffix stop at them (']' too, which is conservative).
const globMeta = `*?[]\`

func (x *shadowIndex) add(g string) {
	o := len(x.globs)
	x.globs = append(x.globs, g)
	if _, ok := x.exact[g]; !ok {
		x.exact[g] = o
	}
	const meta = `*?[\`
	if p, ok := strings.CutSuffix(g, "*"); ok && !strings.ContainsAny(p, meta) {
		if _, seen := x.pre.m[p]; !seen {
			x.pre.put(p, o)
		}
	} else if s, ok := strings.CutPrefix(g, "*"); ok && !strings.ContainsAny(s, meta) {
		if _, seen := x.suf.m[s]; !seen {
			x.suf.put(s, o)
		}
	}
	pre, suf := g, g
	if i := strings.IndexAny(g, globMeta); i >= 0 {
		pre, suf = g[:i], g[strings.LastIndexAny(g, globMeta)+1:]
	}
	switch {
	case pre == "" && suf == "":
		x.rest = append(x.rest, o)
	case len(pre) >= len(suf):
		x.lit.put("p"+pre, append(x.lit.m["p"+pre], o))
	default:
		x.lit.put("s"+suf, append(x.lit.m["s"+suf], o))
	}
}

// coveredBy returns the order of the first added glob that globCovers g,
// or -1.
func (x *shadowIndex) coveredBy(later string) int {
	best := math.MaxInt
	if o, ok := x.exact[later]; ok {
		best = o
	}
	switch {
	case strings.Contains(later, `\`):
	case !strings.ContainsAny(later, `*?[\`):
		// A literal: covered by the first glob that matches it.
		try := func(bucket []int) {
			for _, o := range bucket {
				if o >= best {
					return
				}
				if ok, _ := path.Match(x.globs[o], later); ok {
					best = o
					return
				}
			}
		}
		for _, n := range x.lit.lens {
			if n-1 <= len(later) {
				try(x.lit.m["p"+later[:n-1]])
				try(x.lit.m["s"+later[len(later)-(n-1):]])
			}
		}
		try(x.rest)
	case !strings.Contains(later, "/"):
		lit := later[:strings.IndexAny(later, `*?[\`)]
		for _, n := range x.pre.lens {
			if n > len(lit) {
				break
			}
			if o, ok := x.pre.m[lit[:n]]; ok && o < best {
				best = o
			}
		}
		lit = later[strings.LastIndexAny(later, `*?[\`)+1:]
		for _, n := range x.suf.lens {
			if n > len(lit) {
				break
			}
			if o, ok := x.suf.m[lit[len(lit)-n:]]; ok && o < best {
				best = o
			}
		}
	}
	if best == math.MaxInt {
		return -1
	}
	return best
}
