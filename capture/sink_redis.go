package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

	redisQueueSize  = 8192
	redisBatch      = 256
	redisCallTimout = 2 * time.Second
	// maxIndexedID bounds the IDs indexed in Redis (client-supplied IDs can
	// be long).
	maxIndexedID = 256
	minIndexTTL  = 10 * time.Minute
)

// redisItem is one record on its way to Redis.
type redisItem struct {
	line []byte // JSON without newline
	ids  []redisIndexKey
}

// redisIndexKey is one index key of a record: a string key set to the
// entry ID, or (list) a list the entry ID is appended to.
type redisIndexKey struct {
	key  string
	list bool
}

// redisSink writes records to the stream on its own goroutine, so a slow or
// dead Redis never holds up the file sink. Its queue is bounded; records
// that do not fit, or whose write fails, are counted as sink errors.
type redisSink struct {
	c         redis.UniversalClient
	maxLen    int64
	maxTTL    time.Duration
	metrics   *Metrics
	log       *slog.Logger
	now       func() time.Time
	ch        chan redisItem
	done      chan struct{}
	abort     chan struct{}
	lastLog   atomic.Int64
	rateStart time.Time
	rateN     int
	rate      float64 // records per second, measured over about a minute
}

func newRedisSink(c redis.UniversalClient, maxLen int64, retentionDays int, m *Metrics, log *slog.Logger, now func() time.Time) *redisSink {
	if maxLen < 1 {
		maxLen = 100000
	}
	if retentionDays < 1 {
		retentionDays = 7
	}
	return &redisSink{
		c: c, maxLen: maxLen, maxTTL: time.Duration(retentionDays) * 24 * time.Hour,
		metrics: m, log: log, now: now,
		ch: make(chan redisItem, redisQueueSize), done: make(chan struct{}), abort: make(chan struct{}),
	}
}

// enqueue hands a record to the Redis goroutine without waiting.
func (s *redisSink) enqueue(it redisItem) {
	select {
	case s.ch <- it:
	default:
		s.fail(1, errors.New("redis sink queue full"))
	}
}

func (s *redisSink) fail(n int, err error) {
	s.metrics.sinkErrors[sinkRedis].Add(uint64(n))
	now := s.now().UnixNano()
	if last := s.lastLog.Load(); now-last >= int64(10*time.Second) && s.lastLog.CompareAndSwap(last, now) {
		s.log.Warn("capture: redis sink error; records remain in the capture files", "records", n, "err", err)
	}
}

// run writes batches until ch is closed and drained, or abort is closed.
func (s *redisSink) run() {
	defer close(s.done)
	backoff := time.Duration(0)
	batch := make([]redisItem, 0, redisBatch)
	for {
		it, ok := <-s.ch
		if !ok {
			return
		}
		batch = append(batch[:0], it)
	fill:
		for len(batch) < redisBatch {
			select {
			case it, ok := <-s.ch:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			default:
				break fill
			}
		}
		if err := s.write(batch); err != nil {
			s.fail(len(batch), err)
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			select {
			case <-time.After(backoff):
			case <-s.abort:
				return
			}
		} else {
			backoff = 0
		}
		select {
		case <-s.abort:
			return
		default:
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

func (s *redisSink) write(batch []redisItem) error {
	ctx, cancel := context.WithTimeout(context.Background(), redisCallTimout)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(batch))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range batch {
			cmds[i] = p.XAdd(ctx, &redis.XAddArgs{
				Stream: RedisStream, MaxLen: s.maxLen, Approx: true,
				Values: []any{"r", it.line},
			})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("xadd capture: %w", err)
	}
	ttl := s.indexTTL(len(batch))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range batch {
			entry := cmds[i].Val()
			for _, k := range it.ids {
				if k.list {
					p.RPush(ctx, k.key, entry)
					p.LTrim(ctx, k.key, -maxClientMatches, -1)
					p.Expire(ctx, k.key, ttl)
				} else {
					p.Set(ctx, k.key, entry, ttl)
				}
			}
		}
		// The ID hashing key lives as long as the records it hashes.
		p.Expire(ctx, redisLookupKey, s.maxTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("index capture: %w", err)
	}
	s.metrics.redisWritten.Add(uint64(len(batch)))
	return nil
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
