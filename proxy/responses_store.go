package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Where a response lives: the Responses API keeps state at the provider,
// so a request continuing a response (previous_response_id) and the
// /v1/responses/{id} endpoints must reach the provider and upstream model
// that created it, whatever the route's weights say now (issue 19).
const (
	// respStateTTL is how long a response's placement is kept: OpenAI keeps
	// stored responses for 30 days.
	respStateTTL = 30 * 24 * time.Hour
	// respStateMax bounds the placements kept in memory (about 200 bytes
	// each); the oldest go first.
	respStateMax = 100_000
	// respStateTimeout bounds one Redis read or write of a placement.
	respStateTimeout = time.Second
	respStateKey     = "cairn:resp:"
)

// respPin is where one response lives.
type respPin struct {
	Route, Provider, Model, Cohort string
}

func (p respPin) encode() string {
	return p.Route + "\x1f" + p.Provider + "\x1f" + p.Model + "\x1f" + p.Cohort
}

func decodePin(s string) (respPin, bool) {
	f := strings.Split(s, "\x1f")
	if len(f) != 4 || f[1] == "" {
		return respPin{}, false
	}
	return respPin{Route: f[0], Provider: f[1], Model: f[2], Cohort: f[3]}, true
}

// respStore maps response IDs to their placement: in Redis when
// configured (so that every replica finds a response another created),
// always in a bounded in-memory map too (so that this replica finds its
// own even when a Redis write failed). Safe for concurrent use.
type respStore struct {
	rdb *redis.Client
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	m     map[string]memPin
	ring  []string // insertion order, for eviction
	head  int
	limit int

	writeFailed atomic.Int64
	readFailed  atomic.Int64
	hits        atomic.Int64
	misses      atomic.Int64
	evicted     atomic.Int64
}

type memPin struct {
	pin respPin
	at  time.Time
}

func newRespStore(rdb *redis.Client, now func() time.Time) *respStore {
	return &respStore{rdb: rdb, ttl: respStateTTL, now: now, m: make(map[string]memPin), limit: respStateMax}
}

// put records where id lives. With Redis it waits for the write (at most
// respStateTimeout), so that a client continuing the response on another
// replica right after this one answered finds it.
func (s *respStore) put(ctx context.Context, id string, p respPin) error {
	s.putMem(id, p)
	if s.rdb == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, respStateTimeout)
	defer cancel()
	if err := s.rdb.Set(cctx, respStateKey+id, p.encode(), s.ttl).Err(); err != nil {
		s.writeFailed.Add(1)
		return fmt.Errorf("store response placement: %w", err)
	}
	return nil
}

func (s *respStore) putMem(id string, p respPin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		s.m[id] = memPin{pin: p, at: s.now()}
		return
	}
	if len(s.ring) < s.limit {
		s.ring = append(s.ring, id)
	} else {
		delete(s.m, s.ring[s.head])
		s.evicted.Add(1)
		s.ring[s.head] = id
		s.head = (s.head + 1) % s.limit
	}
	s.m[id] = memPin{pin: p, at: s.now()}
}

// get finds where id lives: memory first, then Redis. ok is false when
// neither knows it (or its placement expired); err reports a Redis
// failure, in which case the caller cannot tell unknown from unreachable.
func (s *respStore) get(ctx context.Context, id string) (respPin, bool, error) {
	s.mu.Lock()
	mp, ok := s.m[id]
	s.mu.Unlock()
	if ok && s.now().Sub(mp.at) < s.ttl {
		s.hits.Add(1)
		return mp.pin, true, nil
	}
	if s.rdb == nil {
		s.misses.Add(1)
		return respPin{}, false, nil
	}
	cctx, cancel := context.WithTimeout(ctx, respStateTimeout)
	defer cancel()
	v, err := s.rdb.Get(cctx, respStateKey+id).Result()
	if errors.Is(err, redis.Nil) {
		s.misses.Add(1)
		return respPin{}, false, nil
	}
	if err != nil {
		s.readFailed.Add(1)
		return respPin{}, false, fmt.Errorf("read response placement: %w", err)
	}
	p, ok := decodePin(v)
	if !ok {
		s.misses.Add(1)
		return respPin{}, false, nil
	}
	s.hits.Add(1)
	s.putMem(id, p)
	return p, true, nil
}

// forget drops id (after a DELETE the provider answered with success).
func (s *respStore) forget(ctx context.Context, id string) {
	s.mu.Lock()
	delete(s.m, id) // its ring slot is reused when it comes round
	s.mu.Unlock()
	if s.rdb == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, respStateTimeout)
	defer cancel()
	if err := s.rdb.Del(cctx, respStateKey+id).Err(); err != nil {
		s.writeFailed.Add(1)
	}
}

func (s *respStore) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// writePrometheus writes the store's counters.
func (s *respStore) writePrometheus(w io.Writer) {
	fmt.Fprintf(w, "# HELP cairn_responses_state_entries Response placements held in memory (previous_response_id routing).\n# TYPE cairn_responses_state_entries gauge\ncairn_responses_state_entries %d\n", s.size())
	fmt.Fprintf(w, "# HELP cairn_responses_state_lookups_total Response placement lookups by result.\n# TYPE cairn_responses_state_lookups_total counter\n")
	fmt.Fprintf(w, "cairn_responses_state_lookups_total{result=\"hit\"} %d\ncairn_responses_state_lookups_total{result=\"miss\"} %d\ncairn_responses_state_lookups_total{result=\"error\"} %d\n",
		s.hits.Load(), s.misses.Load(), s.readFailed.Load())
	fmt.Fprintf(w, "# HELP cairn_responses_state_write_errors_total Response placements that could not be written to Redis (other replicas cannot continue those responses).\n# TYPE cairn_responses_state_write_errors_total counter\ncairn_responses_state_write_errors_total %d\n", s.writeFailed.Load())
	fmt.Fprintf(w, "# HELP cairn_responses_state_evicted_total Response placements dropped from memory at the bound.\n# TYPE cairn_responses_state_evicted_total counter\ncairn_responses_state_evicted_total %d\n", s.evicted.Load())
}
