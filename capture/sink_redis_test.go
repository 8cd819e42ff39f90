package capture

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/redistest"
)

func newRedisClient(t *testing.T, s *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisSinkStreamCappedAndLookup(t *testing.T) {
	rs := redistest.Start(t)
	rc := newRedisClient(t, rs)
	ctx := context.Background()
	const n = 1000
	w := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Redis: rc, Capture: configs.Capture{RedisStreamMaxLen: 100}})
	w.Start()
	for i := range n {
		w.Enqueue(testRecord(i))
	}
	closeWriter(t, w)

	xlen, err := rc.XLen(ctx, RedisStream).Result()
	if err != nil || xlen < 100 || xlen >= n/2 {
		t.Errorf("XLEN %s = %d (%v); want about the cap of 100", RedisStream, xlen, err)
	}
	if text := metricsText(w.metrics); !strings.Contains(text, "cairn_capture_redis_written_total 1000\n") ||
		!strings.Contains(text, `cairn_capture_sink_errors_total{sink="redis"} 0`) {
		t.Errorf("metrics:\n%s", text)
	}
	// Every key but the capped stream carries a TTL.
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil || len(keys) < 3*100 {
		t.Fatalf("KEYS * = %d keys (%v)", len(keys), err)
	}
	for _, k := range keys {
		if k == RedisStream {
			continue
		}
		if ttl := rc.TTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", k, ttl)
		}
	}

	// Another replica (its own data dir, nothing in memory) finds a
	// recent record through Redis by each of its IDs.
	other := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Redis: rc})
	other.Start()
	for _, id := range []string{"gw-0990", "req_prov_0990", "client-0990"} {
		r, err := other.Lookup(ctx, id)
		if err != nil || r.GatewayRequestID != "gw-0990" || r.Route != "support-bot" {
			t.Errorf("replica Lookup(%q) = %v, %v; want gw-0990 from Redis", id, r, err)
		}
	}
	// A record trimmed from the stream is not found (its index key
	// points at a deleted entry).
	if _, err := other.Lookup(ctx, "gw-0000"); err == nil {
		t.Errorf("replica Lookup(gw-0000) found a record trimmed from the capped stream")
	}
}

func TestRedisDownKeepsFileRecords(t *testing.T) {
	rs := redistest.Start(t)
	rc := newRedisClient(t, rs)
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Redis: rc})
	w.Start()
	w.Enqueue(testRecord(0))
	waitFor(t, func() bool { return w.metrics.Accounting().Sinks["redis"].Written == 1 })
	rs.Kill()
	const n = 200
	start := time.Now()
	for i := 1; i <= n; i++ {
		w.Enqueue(testRecord(i))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Enqueue of %d records took %v with Redis down", n, d)
	}
	// Lookup still answers from memory and files.
	if r, err := w.Lookup(context.Background(), "gw-0000"); err != nil || r.GatewayRequestID != "gw-0000" {
		t.Errorf("Lookup with Redis down = %v, %v", r, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = w.Close(ctx) // may report the Redis sink's deadline
	if recs := readRecords(t, dir); len(recs) != n+1 {
		t.Errorf("files hold %d records with Redis down; want %d", len(recs), n+1)
	}
	if w.metrics.sinkErrors[sinkRedis].Load() == 0 {
		t.Errorf("Redis sink errors not counted")
	}
	if w.metrics.sinkErrors[sinkFile].Load() != 0 || w.metrics.dropped.Load() != 0 {
		t.Errorf("file sink errors %d, dropped %d; want 0", w.metrics.sinkErrors[sinkFile].Load(), w.metrics.dropped.Load())
	}
}

func TestRedisHungDoesNotBlockWriter(t *testing.T) {
	rs := redistest.Start(t)
	rc := newRedisClient(t, rs)
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Redis: rc})
	w.Start()
	rs.Pause()
	defer rs.Resume()
	const n = 100
	for i := range n {
		w.Enqueue(testRecord(i))
	}
	// All records reach memory (and the file buffer) while Redis hangs.
	waitFor(t, func() bool { _, err := w.Lookup(context.Background(), "gw-0099"); return err == nil })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = w.Close(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with Redis hung; want bounded by its 1s context", d)
	}
	if recs := readRecords(t, dir); len(recs) != n {
		t.Errorf("files hold %d records with Redis hung; want %d", len(recs), n)
	}
}

func TestRedisIndexTTL(t *testing.T) {
	clock := &testClock{t: time.Unix(1_700_000_000, 0)}
	s := newRedisSink(nil, 1000, 7, 0, NewMetrics(), nil, clock.Now)
	if ttl := s.indexTTL(10); ttl != 7*24*time.Hour {
		t.Errorf("indexTTL before any rate = %v; want the retention", ttl)
	}
	// 1000 records per second: the stream of 1000 rolls over in a
	// second, so the index lives the minimum.
	clock.Set(clock.Now().Add(2 * time.Second))
	if ttl := s.indexTTL(2000); ttl != minIndexTTL {
		t.Errorf("indexTTL at 1000/s = %v; want %v", ttl, minIndexTTL)
	}
	// 0.1 record per second: 2×1000/0.1 s = 20000 s.
	s = newRedisSink(nil, 1000, 7, 0, NewMetrics(), nil, clock.Now)
	s.indexTTL(0)
	clock.Set(clock.Now().Add(100 * time.Second))
	if ttl := s.indexTTL(10); ttl != 20000*time.Second {
		t.Errorf("indexTTL at 0.1/s = %v; want %v", ttl, 20000*time.Second)
	}
}
