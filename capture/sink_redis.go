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
	// redisIndexPrefix + a request ID holds the stream entry ID of the
	// newest record carrying that ID.
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
	ids  []string
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
			for _, id := range it.ids {
				p.Set(ctx, redisIndexPrefix+id, entry, ttl)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index capture: %w", err)
	}
	s.metrics.redisWritten.Add(uint64(len(batch)))
	return nil
}

// lookup finds the newest record carrying id through the index.
func redisLookup(ctx context.Context, c redis.UniversalClient, id string) (*Record, error) {
	if len(id) > maxIndexedID {
		return nil, ErrNotFound
	}
	entry, err := c.Get(ctx, redisIndexPrefix+id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis capture index: %w", err)
	}
	msgs, err := c.XRange(ctx, RedisStream, entry, entry).Result()
	if err != nil {
		return nil, fmt.Errorf("redis capture stream: %w", err)
	}
	if len(msgs) == 0 {
		return nil, ErrNotFound // trimmed from the capped stream
	}
	v, _ := msgs[0].Values["r"].(string)
	var r Record
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return nil, fmt.Errorf("redis capture record %s: %w", entry, err)
	}
	if !hasID(&r, id) {
		return nil, ErrNotFound
	}
	return &r, nil
}

// redisIDs returns the IDs of r to index in Redis.
func redisIDs(r *Record) []string {
	var ids []string
	recordIDs(r, func(id string) {
		if len(id) <= maxIndexedID {
			ids = append(ids, id)
		}
	})
	return ids
}
