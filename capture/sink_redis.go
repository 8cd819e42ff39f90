package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis layout. The stream is capped (XADD MAXLEN ~); every other key
// carries a TTL.
const (
	// RedisStream is the stream of masked records, field "r" holding the
	// record's JSON. Replicas share it.
	RedisStream = "cairn:capture"
	// redisIndexPrefix + "g:" or "p:" + a gateway or provider request ID
	// holds the stream entry ID of the newest record carrying that ID;
	// + "c:" + the keyed hash of a client request ID, a list of the entry
	// IDs of the records carrying it (oldest first, at most
	// maxClientMatches). See lookup.go.
	redisIndexPrefix = "cairn:capture:id:"

	redisBatch      = 256
	redisCallTimout = 2 * time.Second
	// maxIndexedID bounds the IDs indexed in Redis (client-supplied IDs can
	// be long).
	maxIndexedID = 256
	minIndexTTL  = 10 * time.Minute
)

// redisItem is one record on its way to Redis.
type redisItem struct {
	line  []byte // JSON without newline
	ids   []redisIndexKey
	entry string // stream entry ID once added; only the index is left
	// sentAt is when an XADD of the record whose outcome is unknown was
	// sent (the earliest such attempt), sends how many such attempts were
	// made and misses how many look-ups did not find it since the last
	// one (sink_redis_dedupe.go). Zero: no attempt may have added it.
	sentAt time.Time
	sends  int
	misses int
}

// redisIndexKey is one index key of a record: a string key set to the
// entry ID, or (list) a list the entry ID is appended to.
type redisIndexKey struct {
	key  string
	list bool
}

// redisSink writes records to the stream on its own goroutine, so a slow or
// dead Redis never holds up the file sink. Records wait in a bounded
// backlog; a failed batch stays at its head and is retried with backoff
// (100 ms doubling to 5 s), so that when Redis returns the stream is
// backfilled and every replica finds the records by ID. Records that do not
// fit the backlog are counted lost (they remain in the capture files).
type redisSink struct {
	c         redis.UniversalClient
	maxLen    int64
	maxTTL    time.Duration
	metrics   *Metrics
	led       *ledger
	log       *slog.Logger
	now       func() time.Time
	max       int
	wake      chan struct{}
	done      chan struct{}
	abort     chan struct{}
	lastLog   atomic.Int64
	rateStart time.Time
	rateN     int
	rate      float64 // records per second, measured over about a minute

	mu       sync.Mutex
	backlog  []redisItem // oldest first
	bytes    int64       // the lines in backlog
	maxBytes int64       // redisBacklogBytes
	closing  bool
}

// redisBacklogBytes bounds the lines the Redis backlog holds while Redis
// is down, as capture.redis_backlog bounds their count: with 1 MB bodies
// 100,000 records would otherwise hold 100 GB (issue 15). Past it records
// are lost to the stream (they stay in the files) and counted
// (backlog_full).
const redisBacklogBytes = 64 << 20

func newRedisSink(c redis.UniversalClient, maxLen int64, retentionDays, backlog int, m *Metrics, log *slog.Logger, now func() time.Time) *redisSink {
	if maxLen < 1 {
		maxLen = 100000
	}
	if retentionDays < 1 {
		retentionDays = 7
	}
	if backlog < 1 {
		backlog = 100000
	}
	return &redisSink{
		c: c, maxLen: maxLen, maxTTL: time.Duration(retentionDays) * 24 * time.Hour,
		metrics: m, led: &m.ledger, log: log, now: now, max: backlog, maxBytes: redisBacklogBytes,
		wake: make(chan struct{}, 1), done: make(chan struct{}), abort: make(chan struct{}),
	}
}

// enqueue adds a record to the backlog without waiting. It returns false,
// having counted nothing, when the backlog is full.
func (s *redisSink) enqueue(it redisItem) bool {
	s.mu.Lock()
	if len(s.backlog) >= s.max || len(s.backlog) > 0 && s.bytes+int64(len(it.line)) > s.maxBytes {
		s.mu.Unlock()
		return false
	}
	s.backlog = append(s.backlog, it)
	s.bytes += int64(len(it.line))
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// close makes run return once the backlog is empty.
func (s *redisSink) close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pending returns the records in the backlog.
func (s *redisSink) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.backlog)
}

// abandon counts what is left in the backlog as lost; run has returned.
func (s *redisSink) abandon(reason int) {
	s.mu.Lock()
	n := len(s.backlog)
	s.backlog, s.bytes = nil, 0
	s.mu.Unlock()
	s.led.drop(sinkRedis, n, reason)
}

func (s *redisSink) fail(n int, err error) {
	s.metrics.sinkErrors[sinkRedis].Add(1)
	now := s.now().UnixNano()
	if last := s.lastLog.Load(); now-last >= int64(10*time.Second) && s.lastLog.CompareAndSwap(last, now) {
		s.log.Warn("capture: redis sink error; records kept in the backlog and retried", "records", n, "backlog", s.pending(), "err", err)
	}
}

// run writes batches until the sink is closed and the backlog drained, or
// abort is closed.
func (s *redisSink) run() {
	defer close(s.done)
	backoff := time.Duration(0)
	batch := make([]redisItem, 0, redisBatch)
	for {
		s.mu.Lock()
		batch = append(batch[:0], s.backlog[:min(len(s.backlog), redisBatch)]...)
		closing := s.closing
		s.mu.Unlock()
		if len(batch) == 0 {
			if closing {
				return
			}
			select {
			case <-s.wake:
			case <-s.abort:
				return
			}
			continue
		}
		done, err := s.write(batch)
		s.mu.Lock()
		// The head of the backlog is still batch: only run removes.
		kept := s.backlog[:0]
		for i := range batch {
			if !done[i] {
				kept = append(kept, batch[i])
			} else {
				s.bytes -= int64(len(batch[i].line))
			}
		}
		n := len(batch) - len(kept)
		rest := s.backlog[len(batch):]
		s.backlog = append(kept, rest...)
		if len(s.backlog) == 0 && cap(s.backlog) > 4*redisBatch {
			s.backlog = nil
		}
		s.mu.Unlock()
		s.led.settle(sinkRedis, n)
		if backoff > 0 {
			s.metrics.backfilled.Add(uint64(n))
		}
		if errors.Is(err, errRedisUnsettled) {
			// Redis answers; an interrupted attempt may still be running
			// there: look for its records again shortly.
			t := time.NewTimer(redisSettleWait)
			select {
			case <-t.C:
			case <-s.abort:
				t.Stop()
				return
			}
			continue
		}
		if err == nil {
			if backoff > 0 && s.pending() == 0 {
				backoff = 0
				s.metrics.sinkFailing[sinkRedis].Store(false)
				s.log.Info("capture: redis sink recovered; backlog written", "backfilled_total", s.metrics.backfilled.Load())
			}
			continue
		}
		s.fail(len(batch)-n, err)
		s.metrics.sinkFailing[sinkRedis].Store(true)
		backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.abort:
			t.Stop()
			return
		}
	}
}

// indexTTL is how long index keys live: about twice the time the capped
// stream takes to roll over at the current rate, so that the index does not
// outgrow the stream, between 10 minutes and the retention period.
func (s *redisSink) indexTTL(n int) time.Duration {
	now := s.now()
	if s.rateStart.IsZero() {
		s.rateStart = now
	}
	s.rateN += n
	if el := now.Sub(s.rateStart); el >= time.Minute || s.rate == 0 && el >= time.Second {
		s.rate = float64(s.rateN) / el.Seconds()
		s.rateStart, s.rateN = now, 0
	}
	if s.rate <= 0 {
		return s.maxTTL
	}
	ttl := time.Duration(2 * float64(s.maxLen) / s.rate * float64(time.Second))
	return min(max(ttl, minIndexTTL), s.maxTTL)
}

// write adds the batch to the stream and indexes it. done[i] reports
// whether item i is stored and indexed; an item added but not indexed
// keeps its entry ID, so that a retry only indexes it.
func (s *redisSink) write(batch []redisItem) (done []bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), redisCallTimout)
	defer cancel()
	done = make([]bool, len(batch))
	var serr error // errRedisUnsettled: some records wait for a look-up
	for _, it := range batch {
		if it.entry == "" && !it.sentAt.IsZero() {
			if serr = s.settle(ctx, batch); serr != nil && !errors.Is(serr, errRedisUnsettled) {
				return done, serr
			}
			break
		}
	}
	cmds := make([]*redis.StringCmd, len(batch))
	at := time.Now()
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range batch {
			if it.entry != "" || !it.sentAt.IsZero() {
				continue
			}
			cmds[i] = p.XAdd(ctx, &redis.XAddArgs{
				Stream: RedisStream, MaxLen: s.maxLen, Approx: true,
				Values: []any{"r", it.line},
			})
		}
		return nil
	})
	for i, c := range cmds {
		switch {
		case c == nil:
		case c.Err() == nil:
			batch[i].entry = c.Val()
		case uncertainXAdd(c.Err()):
			it := &batch[i]
			if it.sentAt.IsZero() {
				it.sentAt = at
			}
			it.sends++
			it.misses = 0
		}
	}
	if err != nil {
		err = fmt.Errorf("xadd capture: %w", err)
	}
	ttl := s.indexTTL(len(batch))
	sets := make([][]redis.Cmder, len(batch))
	_, ierr := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range batch {
			if it.entry == "" {
				continue
			}
			for _, k := range it.ids {
				if k.list {
					sets[i] = append(sets[i], p.RPush(ctx, k.key, it.entry))
					p.LTrim(ctx, k.key, -maxClientMatches, -1)
					p.Expire(ctx, k.key, ttl)
				} else {
					sets[i] = append(sets[i], p.Set(ctx, k.key, it.entry, ttl))
				}
			}
		}
		// The ID hashing key lives as long as the records it hashes.
		p.Expire(ctx, redisLookupKey, s.maxTTL)
		return nil
	})
	for i, it := range batch {
		ok := it.entry != ""
		for _, c := range sets[i] {
			ok = ok && c.Err() == nil
		}
		done[i] = ok
	}
	if ierr != nil && err == nil {
		err = fmt.Errorf("index capture: %w", ierr)
	}
	if err == nil {
		err = serr
	}
	return done, err
}

// redisMatches are what the Redis index holds for one ID.
type redisMatches struct {
	gateway, provider *Record
	client            []*Record // newest first
}

// redisFind reads the index for id in the three namespaces (one round
// trip) and then the stream entries it names (a second one).
func redisFind(ctx context.Context, c redis.UniversalClient, id string, hashes []string) (redisMatches, error) {
	var rm redisMatches
	if len(id) > maxIndexedID {
		id = "" // never indexed: only the client namespace can match
	}
	var g, p *redis.StringCmd
	lists := make([]*redis.StringSliceCmd, len(hashes))
	_, err := c.Pipelined(ctx, func(pl redis.Pipeliner) error {
		if id != "" {
			g = pl.Get(ctx, redisIndexPrefix+"g:"+id)
			p = pl.Get(ctx, redisIndexPrefix+"p:"+id)
		}
		for i, h := range hashes {
			lists[i] = pl.LRange(ctx, redisIndexPrefix+"c:"+h, 0, -1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return rm, fmt.Errorf("redis capture index: %w", err)
	}
	read := func(entries []string) ([]*Record, error) {
		if len(entries) == 0 {
			return nil, nil
		}
		cmds := make([]*redis.XMessageSliceCmd, len(entries))
		_, err := c.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for i, e := range entries {
				cmds[i] = pl.XRange(ctx, RedisStream, e, e)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("redis capture stream: %w", err)
		}
		var out []*Record
		for _, cmd := range cmds {
			msgs := cmd.Val()
			if len(msgs) == 0 {
				out = append(out, nil) // trimmed from the capped stream
				continue
			}
			v, _ := msgs[0].Values["r"].(string)
			var r Record
			if err := json.Unmarshal([]byte(v), &r); err != nil {
				return nil, fmt.Errorf("redis capture record %s: %w", msgs[0].ID, err)
			}
			out = append(out, &r)
		}
		return out, nil
	}
	var entries []string
	if g != nil {
		entries = append(entries, g.Val(), p.Val())
	} else {
		entries = append(entries, "", "")
	}
	for _, l := range lists {
		for i := len(l.Val()) - 1; i >= 0; i-- { // newest first
			entries = append(entries, l.Val()[i])
		}
	}
	var want []string
	for _, e := range entries {
		if e != "" {
			want = append(want, e)
		}
	}
	recs, err := read(want)
	if err != nil {
		return rm, err
	}
	j := 0
	for i, e := range entries {
		if e == "" {
			continue
		}
		r := recs[j]
		j++
		if r == nil {
			continue
		}
		switch kind := idKind(r, id, hashes); {
		case i == 0 && kind == IDGateway:
			rm.gateway = r
		case i == 1 && kind == IDProvider:
			rm.provider = r
		case i >= 2 && kind == IDClient:
			rm.client = append(rm.client, r)
		}
	}
	return rm, nil
}

// redisIDs returns the index keys of r.
func redisIDs(r *Record) []redisIndexKey {
	var ids []redisIndexKey
	if id := r.GatewayRequestID; id != "" && len(id) <= maxIndexedID {
		ids = append(ids, redisIndexKey{key: redisIndexPrefix + "g:" + id})
	}
	providerIDs(r, func(id string) {
		if len(id) <= maxIndexedID {
			ids = append(ids, redisIndexKey{key: redisIndexPrefix + "p:" + id})
		}
	})
	if h := r.ClientRequestIDHash; h != "" {
		ids = append(ids, redisIndexKey{key: redisIndexPrefix + "c:" + h, list: true})
	}
	return ids
}
