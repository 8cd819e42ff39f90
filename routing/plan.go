package routing

// Plan appends to dst the targets to try for one request, in order, and
// returns the cohort of the primary.
//
// The primary is chosen in two steps: a cohort by weight among the
// route's cohorts with live weight, then a target by weight within that
// cohort. With a sticky value (key name, user, header) both steps hash
// route name and sticky value, so the same value always lands in the same
// cohort and target, on every replica and across restarts; without one,
// rnd (a random number from the caller) decides.
//
// After the primary come the route's fallbacks in order. A target whose
// circuit is open is skipped; if the primary is open, the next live target
// of the same cohort takes its place, so a caller stays in its cohort. If
// every candidate is open the plan holds the primary alone (better a
// likely failure than a certain one). Duplicates (same provider and
// upstream model) appear once. Plan calls Health.Allow on the candidates,
// which hands out a half-open circuit's single probe.
//
// Plan allocates nothing when dst has room for 1+len(r.Fallbacks) targets.
func (r *Route) Plan(dst []*Target, sticky string, rnd uint64) (plan []*Target, cohortName string) {
	start := len(dst)
	var h uint64
	if sticky != "" {
		h = stickyHash(r.Name, sticky)
	} else {
		h = rnd
	}
	var picked *Target
	if r.total > 0 {
		c := &r.cohorts[r.pickCohort(h)]
		cohortName = c.name
		i := pickTarget(c, mix(h+0x9e3779b97f4a7c15))
		picked = c.targets[i]
		for k := range c.targets {
			t := c.targets[(i+k)%len(c.targets)]
			if t.Health.Allow() {
				dst = append(dst, t)
				break
			}
		}
	}
	for _, f := range r.Fallbacks {
		if (picked != nil && f.Health == picked.Health) || containsHealth(dst[start:], f.Health) {
			continue
		}
		if f.Health.Allow() {
			dst = append(dst, f)
		}
	}
	if len(dst) == start {
		switch {
		case picked != nil:
			dst = append(dst, picked)
		case len(r.Fallbacks) > 0:
			dst = append(dst, r.Fallbacks[0])
		case len(r.Targets) > 0:
			dst = append(dst, r.Targets[0])
		}
		if cohortName == "" && len(dst) > start {
			cohortName = dst[start].Cohort
		}
	}
	return dst, cohortName
}

// CohortFor returns the cohort a sticky value lands in on this route (""
// when the route has no live cohort). It is what Plan picks for that value
// before circuit breaking, for tests and operators.
func (r *Route) CohortFor(sticky string) string {
	if r.total == 0 {
		return ""
	}
	return r.cohorts[r.pickCohort(stickyHash(r.Name, sticky))].name
}

func (r *Route) pickCohort(h uint64) int {
	b := int(h % uint64(r.total))
	for i := range r.cohorts {
		if b < r.cohorts[i].weight {
			return i
		}
		b -= r.cohorts[i].weight
	}
	return len(r.cohorts) - 1
}

func pickTarget(c *cohort, h uint64) int {
	if len(c.targets) == 1 {
		return 0
	}
	b := int(h % uint64(c.weight))
	for i, t := range c.targets {
		if b < t.Weight {
			return i
		}
		b -= t.Weight
	}
	return len(c.targets) - 1
}

func containsHealth(ts []*Target, h *Health) bool {
	for _, t := range ts {
		if t.Health == h {
			return true
		}
	}
	return false
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// stickyHash is FNV-1a 64 over route + "\x00" + sticky, finished with a
// 64-bit mixer. FNV-1a alone is unfit for "mod weight": its low bits
// depend only on the low bits of the input bytes (h mod 2 is the parity of
// the bytes' low bits), so "user-1" and "user-3" would always share a
// cohort under a 50/50 split. The mixer spreads every input bit over the
// result. The function is fixed: changing it moves users between cohorts.
func stickyHash(route, sticky string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(route); i++ {
		h ^= uint64(route[i])
		h *= fnvPrime64
	}
	h *= fnvPrime64 // the "\x00" separator: h ^= 0 is a no-op
	for i := 0; i < len(sticky); i++ {
		h ^= uint64(sticky[i])
		h *= fnvPrime64
	}
	return mix(h)
}

// mix is the 64-bit finalizer of MurmurHash3 (fmix64).
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
