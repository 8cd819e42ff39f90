package routing

import (
	"hash/maphash"
	"path"
	"slices"
	"strings"
	"sync/atomic"
)

// matcher finds the first glob, in config order, that matches a model name,
// at a cost that does not grow with the number of routes (issue 15): an
// index by each glob's literal prefix or suffix narrows the globs to those
// that can match, and a bounded cache remembers the answer (a route or
// none) for names seen recently. It is built once per config and shared by
// the tables a rollback derives from it, since a rollback changes weights,
// never globs or the order of routes. Safe for concurrent use.
type matcher struct {
	globs []glob // every route's globs, in config order

	// Each glob is filed under the longer of its literal prefix and its
	// literal suffix; globs with neither (such as "*" or "?x*") are in rest.
	byPrefix   map[string][]int32 // literal prefix → positions in globs, ascending
	prefixLens []int              // distinct key lengths of byPrefix, ascending
	bySuffix   map[string][]int32
	suffixLens []int
	rest       []int32

	cache matchCache
	// match is path.Match; tests count the patterns tried through it.
	match func(pattern, name string) (bool, error)
}

// glob is one match pattern and the position of its route in Table.routes.
type glob struct {
	pattern string
	route   int32
}

// noRoute is the route position of a name that no glob matches.
const noRoute = -1

func newMatcher(routes []*Route) *matcher {
	m := &matcher{byPrefix: map[string][]int32{}, bySuffix: map[string][]int32{}, match: path.Match}
	m.cache.init()
	for ri, r := range routes {
		for _, p := range r.Config.Globs {
			gi := int32(len(m.globs))
			m.globs = append(m.globs, glob{pattern: p, route: int32(ri)})
			pre, suf := literalPrefix(p), literalSuffix(p)
			switch {
			case pre == "" && suf == "":
				m.rest = append(m.rest, gi)
			case len(pre) >= len(suf):
				m.byPrefix[pre] = append(m.byPrefix[pre], gi)
			default:
				m.bySuffix[suf] = append(m.bySuffix[suf], gi)
			}
		}
	}
	m.prefixLens = keyLens(m.byPrefix)
	m.suffixLens = keyLens(m.bySuffix)
	return m
}

// keyLens returns the distinct lengths of m's keys, ascending.
func keyLens(m map[string][]int32) []int {
	seen := map[int]bool{}
	var out []int
	for k := range m {
		if !seen[len(k)] {
			seen[len(k)] = true
			out = append(out, len(k))
		}
	}
	slices.Sort(out)
	return out
}

// isMeta reports whether c has a meaning in path.Match syntax. A literal
// prefix or suffix stops at the first such byte, which is conservative: a
// shorter literal only makes more globs candidates, and every candidate
// is confirmed with path.Match.
func isMeta(c byte) bool { return c == '*' || c == '?' || c == '[' || c == ']' || c == '\\' }

func literalPrefix(p string) string {
	for i := 0; i < len(p); i++ {
		if isMeta(p[i]) {
			return p[:i]
		}
	}
	return p
}

func literalSuffix(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if isMeta(p[i]) {
			return p[i+1:]
		}
	}
	return p
}

// route returns the position in Table.routes of the route of the first
// glob that matches model, or noRoute.
func (m *matcher) route(model string) int32 {
	if len(m.globs) == 0 {
		return noRoute
	}
	if r, ok := m.cache.get(model); ok {
		return r
	}
	r := m.scan(model)
	m.cache.put(model, r)
	return r
}

// scan finds the first matching glob through the index: the answer is the
// earliest of each candidate bucket's first match.
func (m *matcher) scan(model string) int32 {
	best := int32(len(m.globs)) // position of the first matching glob so far
	try := func(bucket []int32) {
		for _, gi := range bucket {
			if gi >= best {
				return
			}
			if ok, _ := m.match(m.globs[gi].pattern, model); ok {
				best = gi
				return
			}
		}
	}
	for _, n := range m.prefixLens {
		if n > len(model) {
			break
		}
		if b, ok := m.byPrefix[model[:n]]; ok {
			try(b)
		}
	}
	for _, n := range m.suffixLens {
		if n > len(model) {
			break
		}
		if b, ok := m.bySuffix[model[len(model)-n:]]; ok {
			try(b)
		}
	}
	try(m.rest)
	if best == int32(len(m.globs)) {
		return noRoute
	}
	return m.globs[best].route
}

// Sizes of the model → route cache of one table. Names longer than
// maxCachedModel are looked up in the index every time, so that a cache
// entry costs at most a few hundred bytes: the whole cache stays under
// about matchCacheSize × (maxCachedModel + 48) bytes ≈ 1.2 MiB, whatever
// clients send.
const (
	matchCacheSize = 4096 // entries, a power of two
	maxCachedModel = 256  // bytes
)

// matchCache is a fixed-size, two-way set-associative cache from model name
// to route position (noRoute for a name no glob matches), with CLOCK-style
// second chance: an entry read since it was stored survives one eviction,
// so the models clients really use stay while a stream of random names
// only churns the entries of other random names. Lookups are two atomic
// loads and a string compare, with no lock; a store allocates one entry.
// Safe for concurrent use.
type matchCache struct {
	seed maphash.Seed
	sets []cacheSet
}

type cacheSet [2]atomic.Pointer[cacheEntry]

// cacheEntry is immutable once published, except for its reference bit.
type cacheEntry struct {
	model string // owned copy: never aliases a request body
	route int32
	ref   atomic.Bool
}

func (c *matchCache) init() {
	c.seed = maphash.MakeSeed()
	c.sets = make([]cacheSet, matchCacheSize/2)
}

func (c *matchCache) set(model string) *cacheSet {
	h := maphash.String(c.seed, model)
	return &c.sets[h&uint64(len(c.sets)-1)]
}

func (c *matchCache) get(model string) (int32, bool) {
	if len(model) > maxCachedModel {
		return 0, false
	}
	s := c.set(model)
	for w := range s {
		if e := s[w].Load(); e != nil && e.model == model {
			if !e.ref.Load() { // write only when it changes: hits stay read-only
				e.ref.Store(true)
			}
			return e.route, true
		}
	}
	return 0, false
}

func (c *matchCache) put(model string, route int32) {
	if len(model) > maxCachedModel {
		return
	}
	e := &cacheEntry{model: strings.Clone(model), route: route}
	s := c.set(model)
	for w := range s {
		if s[w].Load() == nil && s[w].CompareAndSwap(nil, e) {
			return
		}
	}
	for w := range s {
		if cur := s[w].Load(); cur == nil || !cur.ref.Load() {
			if s[w].CompareAndSwap(cur, e) {
				return
			}
		}
	}
	// Both were read since stored: each loses its second chance and the
	// way the name's length picks goes, so that two names contending for
	// one set do not always evict the same way.
	for w := range s {
		if cur := s[w].Load(); cur != nil {
			cur.ref.Store(false)
		}
	}
	s[len(model)&1].Store(e)
}

// len returns the number of cached names (for tests).
func (c *matchCache) len() int {
	n := 0
	for i := range c.sets {
		for w := range c.sets[i] {
			if c.sets[i][w].Load() != nil {
				n++
			}
		}
	}
	return n
}
