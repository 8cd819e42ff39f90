package capture

import (
	"slices"
	"sync"
)

// defaultMemoryBytes is capture.memory_bytes's default: the approximate
// size of the records kept in memory for lookup. Past it the oldest are
// evicted early (they are still found in the files), so that large masked
// bodies cannot hold gigabytes.
const defaultMemoryBytes = 16 << 20

// memory is a ring of the most recent masked records, indexed by the
// request IDs they carry, one index per namespace (see lookup.go). The
// writer goroutine adds; any goroutine reads.
type memory struct {
	mu       sync.RWMutex
	ring     []*Record
	head     int // oldest
	n        int
	bytes    int64
	maxBytes int64
	gateway  map[string]*Record
	provider map[string]*Record   // the newest record per provider ID
	client   map[string][]*Record // by keyed hash, oldest first
}

// newMemory returns a ring of at most n records and about maxBytes
// (recordSize); maxBytes <= 0 means defaultMemoryBytes.
func newMemory(n int, maxBytes int64) *memory {
	if n < 1 {
		n = 1
	}
	if maxBytes <= 0 {
		maxBytes = defaultMemoryBytes
	}
	return &memory{ring: make([]*Record, n), maxBytes: maxBytes,
		gateway: make(map[string]*Record, n), provider: make(map[string]*Record, n), client: make(map[string][]*Record)}
}

// providerIDs calls fn for every provider request ID of r (final and per
// attempt); fn may see an ID twice.
func providerIDs(r *Record, fn func(id string)) {
	if r.ProviderRequestID != "" {
		fn(r.ProviderRequestID)
	}
	for i := range r.Attempts {
		if id := r.Attempts[i].ProviderRequestID; id != "" && id != r.ProviderRequestID {
			fn(id)
		}
	}
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
	m.gateway[r.GatewayRequestID] = r
	providerIDs(r, func(id string) { m.provider[id] = r })
	if h := r.ClientRequestIDHash; h != "" {
		list := m.client[h]
		if len(list) >= maxClientMatches {
			list = list[1:]
		}
		m.client[h] = append(list, r)
	}
}

func (m *memory) evictOldest() {
	old := m.ring[m.head]
	m.ring[m.head] = nil
	m.head = (m.head + 1) % len(m.ring)
	m.n--
	m.bytes -= recordSize(old)
	if m.gateway[old.GatewayRequestID] == old {
		delete(m.gateway, old.GatewayRequestID)
	}
	providerIDs(old, func(id string) {
		if m.provider[id] == old {
			delete(m.provider, id)
		}
	})
	if h := old.ClientRequestIDHash; h != "" {
		list := slices.DeleteFunc(m.client[h], func(r *Record) bool { return r == old })
		if len(list) == 0 {
			delete(m.client, h)
		} else {
			m.client[h] = list
		}
	}
}

// lookup returns the record whose gateway (kind IDGateway) or provider
// (IDProvider) request ID is id, or nil.
func (m *memory) lookup(kind, id string) *Record {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if kind == IDGateway {
		return m.gateway[id]
	}
	return m.provider[id]
}

// lookupClient returns the records whose client ID has the keyed hash h,
// newest first.
func (m *memory) lookupClient(h string) []*Record {
	m.mu.RLock()
	defer m.mu.RUnlock()
	list := m.client[h]
	out := make([]*Record, len(list))
	for i, r := range list {
		out[len(list)-1-i] = r
	}
	return out
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
