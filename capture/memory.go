package capture

import (
	"hash/maphash"
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
//
// The indexes are keyed by a 64-bit hash of the ID (maphash), and each
// ring slot keeps its record's size and key hashes beside it, so that
// evicting the oldest record reads neither the record nor its ID strings:
// by then they are cold, 10,000 records ago, and hashing and comparing
// them cost ~1.5 µs an add under load (issue 15). A lookup compares the
// ID of the record it finds, so two IDs whose hashes collide (about one
// chance in 2^64 per pair) only send the older one's lookup to the files.
type memory struct {
	mu       sync.RWMutex
	ring     []*Record
	slots    []memSlot // beside ring: what eviction needs
	head     int       // oldest
	n        int
	bytes    int64
	maxBytes int64
	seed     maphash.Seed
	gateway  map[uint64]*Record
	provider map[uint64]*Record   // the newest record per provider ID
	client   map[uint64][]*Record // by keyed hash, oldest first
}

// memSlot is what evicting a ring slot's record needs, kept beside it.
type memSlot struct {
	size           int64
	gateway, final uint64 // gateway and final provider ID hashes
	client         uint64 // 0: no client ID
	// attempts: some attempt has a provider ID other than the final
	// one (a retry); those are hashed again on eviction.
	attempts bool
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
	return &memory{ring: make([]*Record, n), slots: make([]memSlot, n), maxBytes: maxBytes, seed: maphash.MakeSeed(),
		gateway: make(map[uint64]*Record, n), provider: make(map[uint64]*Record, n), client: make(map[uint64][]*Record)}
}

func (m *memory) key(id string) uint64 { return maphash.String(m.seed, id) }

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
	sl := memSlot{size: recordSize(r), gateway: m.key(r.GatewayRequestID)}
	if r.ProviderRequestID != "" {
		sl.final = m.key(r.ProviderRequestID)
	}
	for i := range r.Attempts {
		if id := r.Attempts[i].ProviderRequestID; id != "" && id != r.ProviderRequestID {
			sl.attempts = true
		}
	}
	if h := r.ClientRequestIDHash; h != "" {
		sl.client = m.key(h) | 1 // never 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.n > 0 && (m.n == len(m.ring) || m.bytes+sl.size > m.maxBytes) {
		m.evictOldest()
	}
	at := (m.head + m.n) % len(m.ring)
	m.ring[at], m.slots[at] = r, sl
	m.n++
	m.bytes += sl.size
	m.gateway[sl.gateway] = r
	if r.ProviderRequestID != "" {
		m.provider[sl.final] = r
	}
	if sl.attempts {
		providerIDs(r, func(id string) { m.provider[m.key(id)] = r })
	}
	if sl.client != 0 {
		list := m.client[sl.client]
		if len(list) >= maxClientMatches {
			list = list[1:]
		}
		m.client[sl.client] = append(list, r)
	}
}

func (m *memory) evictOldest() {
	old, sl := m.ring[m.head], m.slots[m.head]
	m.ring[m.head], m.slots[m.head] = nil, memSlot{}
	m.head = (m.head + 1) % len(m.ring)
	m.n--
	m.bytes -= sl.size
	if m.gateway[sl.gateway] == old {
		delete(m.gateway, sl.gateway)
	}
	if sl.final != 0 && m.provider[sl.final] == old {
		delete(m.provider, sl.final)
	}
	if sl.attempts {
		providerIDs(old, func(id string) {
			if k := m.key(id); m.provider[k] == old {
				delete(m.provider, k)
			}
		})
	}
	if sl.client != 0 {
		list := m.client[sl.client]
		if len(list) > 0 && list[0] == old {
			list = list[1:] // the common case: the oldest is first
		} else {
			list = slices.DeleteFunc(list, func(r *Record) bool { return r == old })
		}
		if len(list) == 0 {
			delete(m.client, sl.client)
		} else {
			m.client[sl.client] = list
		}
	}
}

// lookup returns the record whose gateway (kind IDGateway) or provider
// (IDProvider) request ID is id, or nil.
func (m *memory) lookup(kind, id string) *Record {
	k := m.key(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	if kind == IDGateway {
		if r := m.gateway[k]; r != nil && r.GatewayRequestID == id {
			return r
		}
		return nil
	}
	r := m.provider[k]
	if r == nil {
		return nil
	}
	found := false
	providerIDs(r, func(p string) { found = found || p == id })
	if !found {
		return nil
	}
	return r
}

// lookupClient returns the records whose client ID has the keyed hash h,
// newest first.
func (m *memory) lookupClient(h string) []*Record {
	k := m.key(h) | 1
	m.mu.RLock()
	defer m.mu.RUnlock()
	list := m.client[k]
	out := make([]*Record, 0, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].ClientRequestIDHash == h {
			out = append(out, list[i])
		}
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
