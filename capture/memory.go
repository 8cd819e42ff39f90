package capture

import "sync"

// memory is a ring of the most recent masked records, indexed by every
// request ID they carry. The writer goroutine adds; any goroutine reads.
type memory struct {
	mu   sync.RWMutex
	ring []*Record
	next int
	idx  map[string]*Record
}

func newMemory(n int) *memory {
	if n < 1 {
		n = 1
	}
	return &memory{ring: make([]*Record, n), idx: make(map[string]*Record, 3*n)}
}

// recordIDs calls fn for every ID under which r can be found: the
// gateway's, the client's and every provider request ID (final and per
// attempt). Empty IDs are skipped; fn may see an ID twice.
func recordIDs(r *Record, fn func(id string)) {
	for _, id := range []string{r.GatewayRequestID, r.ProviderRequestID, r.ClientRequestID} {
		if id != "" {
			fn(id)
		}
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

func (m *memory) add(r *Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.ring[m.next]; old != nil {
		recordIDs(old, func(id string) {
			if m.idx[id] == old {
				delete(m.idx, id)
			}
		})
	}
	m.ring[m.next] = r
	m.next = (m.next + 1) % len(m.ring)
	recordIDs(r, func(id string) { m.idx[id] = r })
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
	for i := 1; i <= len(m.ring) && len(out) < n; i++ {
		r := m.ring[(m.next-i+len(m.ring))%len(m.ring)]
		if r == nil {
			break
		}
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out
}
