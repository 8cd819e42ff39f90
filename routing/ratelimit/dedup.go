package ratelimit

import (
	"hash/maphash"
	"sync/atomic"
	"time"
)

// Charge de-duplication (issue 15): a charged request ID is remembered
// only as long as a repeat could still land in a window that counted it,
// in a ring of time buckets, instead of a map that grew to ~2M IDs per busy
// key. Each bucket holds at most dedupBucketIDs 64-bit hashes; past that a
// charge still counts but its ID is not remembered, and the drop is counted
// (cairn_ratelimit_dedup_dropped_total).
const (
	// dedupBuckets × dedupSpan covers the window the charge landed in and
	// the one after it: 2 minutes, plus the bucket being filled.
	dedupBuckets = 9
	dedupSpan    = Window / 4
	// dedupBucketIDs caps one bucket: 32Ki hashes (~1 MiB with map
	// overhead), enough for ~2,000 charges a second per key without a
	// drop; a key remembers at most ~300k IDs (~9 MiB) however busy.
	dedupBucketIDs = 1 << 15
)

// dedupSeed hashes request IDs; fixed per process, which is all a
// per-process ring needs.
var dedupSeed = maphash.MakeSeed()

// dedupRing remembers recently charged request IDs for one key. Its
// methods are called with the owning bucket's mutex held.
type dedupRing struct {
	slots [dedupBuckets]dedupSlot
}

type dedupSlot struct {
	epoch int64 // time / dedupSpan of the IDs it holds
	ids   map[uint64]struct{}
}

// seen reports whether id was charged within the ring's span and, if
// not, remembers it. dropped counts IDs that could not be remembered.
func (r *dedupRing) seen(id string, now time.Time, dropped *atomic.Uint64) bool {
	h := maphash.String(dedupSeed, id)
	epoch := now.UnixNano() / int64(dedupSpan)
	for i := range r.slots {
		s := &r.slots[i]
		if s.ids == nil || epoch-s.epoch >= dedupBuckets || s.epoch > epoch {
			continue
		}
		if _, ok := s.ids[h]; ok {
			return true
		}
	}
	s := &r.slots[int(uint64(epoch)%dedupBuckets)]
	if s.epoch != epoch || s.ids == nil {
		// The slot held IDs of dedupBuckets spans ago: forget them.
		if s.ids == nil {
			s.ids = make(map[uint64]struct{})
		} else {
			clear(s.ids)
		}
		s.epoch = epoch
	}
	if len(s.ids) >= dedupBucketIDs {
		dropped.Add(1)
		return false
	}
	s.ids[h] = struct{}{}
	return false
}

// size is the number of IDs remembered (for tests).
func (r *dedupRing) size() int {
	n := 0
	for i := range r.slots {
		n += len(r.slots[i].ids)
	}
	return n
}
