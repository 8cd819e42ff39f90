package capture

import (
	"strings"
	"sync"
)

// maxMemoryBytes bounds the approximate size of the records kept in memory
// for lookup: past it the oldest are evicted early (they are still found in
// the files), so that large masked bodies cannot hold gigabytes.
const maxMemoryBytes = 256 << 20

// memory is a ring of the most recent masked records, indexed by every
// request ID they carry. The writer goroutine adds; any goroutine reads.
type memory struct {
	mu       sync.RWMutex
	ring     []*Record
	head     int // oldest
	n        int
	bytes    int64
	maxBytes int64
	idx      map[string]*Record
}

func newMemory(n int) *memory {
	if n < 1 {
		n = 1
	}
	return &memory{ring: make([]*Record, n), maxBytes: maxMemoryBytes, idx: make(map[string]*Record, 3*n)}
}

// recordIDs calls fn for every ID under which r can be found: the
// gateway's, the client's and every provider request ID (final and per
// attempt). Empty IDs are skipped; fn may see an ID twice. A client request
// ID that masking changed (it held an email, say, and now reads "[EMAIL]")
// is not an ID any more and is skipped: looking it up must not return
// another client's record.
func recordIDs(r *Record, fn func(id string)) {
	for _, id := range []string{r.GatewayRequestID, r.ProviderRequestID} {
		if id != "" {
			fn(id)
		}
	}
	if id := r.ClientRequestID; id != "" && !strings.Contains(id, "[") {
		fn(id)
	}
	for i := range r.Attempts {
		if id := r.Attempts[i].ProviderRequestID; id != "" && id != r.ProviderRequestID {
			fn(id)
		}
	}
}

// hasID reports whether r carries id.
func hasID(r *Record, id string) bool {
	found := false
	recordIDs(r, func(x string) { found = found || x == id })
	return found
}

// recordSize estimates the memory a masked record holds.
func recordSize(r *Record) int64 {
	n := 1024 + len(r.Request) + len(r.Response) + len(r.Error)
	for _, reason := range r.Contract.Reasons {
		n += len(reason)
	}
	return int64(n)
}

func (m *memory) add(r *Record) {
	size := recordSize(r)
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.n > 0 && (m.n == len(m.ring) || m.bytes+size > m.maxBytes) {
		m.evictOldest()
	}
	m.ring[(m.head+m.n)%len(m.ring)] = r
	m.n++
	m.bytes += size
	recordIDs(r, func(id string) { m.idx[id] = r })
}

func (m *memory) evictOldest() {
	old := m.ring[m.head]
	m.ring[m.head] = nil
	m.head = (m.head + 1) % len(m.ring)
	m.n--
	m.bytes -= recordSize(old)
	recordIDs(old, func(id string) {
		if m.idx[id] == old {
			delete(m.idx, id)
		}
	})
}

func (m *memory) lookup(id string) *Record {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.idx[id]
}

// recent returns up to n records, newest first, for which keep (nil: all)
// is true.
func (m *memory) recent(n int, keep func(*Record) bool) []*Record {
	if n <= 0 {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Record
	for i := m.n - 1; i >= 0 && len(out) < n; i-- {
		r := m.ring[(m.head+i)%len(m.ring)]
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out
}
