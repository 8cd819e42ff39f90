package capture

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/internal/redistest"
)

func dedupeItem(t *testing.T, i int) redisItem {
	t.Helper()
	r := testRecord(i)
	line, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return redisItem{line: line, ids: redisIDs(r)}
}

// Records whose XADD was interrupted but ran (twice: two interrupted
// attempts) are found in the stream among other replicas' entries: the
// retry keeps the first copy, deletes the second and only indexes; a
// record the interrupted attempt never added is added once, after two
// look-ups missed it.
func TestRedisRetryAfterInterruptedXAddDedupes(t *testing.T) {
	rs := redistest.Start(t)
	rc := newRedisClient(t, rs)
	ctx := context.Background()
	m := NewMetrics()
	s := newRedisSink(rc, 1000, 7, 0, m, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	sent := time.Now().Add(-time.Second)
	batch := []redisItem{dedupeItem(t, 1), dedupeItem(t, 2), dedupeItem(t, 3)}
	for i := range batch {
		batch[i].sentAt, batch[i].sends = sent, 2
	}
	add := func(line []byte) string {
		id, err := rc.XAdd(ctx, &redis.XAddArgs{Stream: RedisStream, Values: []any{"r", line}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	other := dedupeItem(t, 99) // another replica's record
	add(other.line)
	first := []string{add(batch[0].line), add(batch[1].line)}
	add(other.line)
	add(batch[0].line) // the second interrupted attempt ran too
	// Record 3 was never added.

	done, err := s.write(batch)
	if !errors.Is(err, errRedisUnsettled) {
		t.Fatalf("first write: err %v; want errRedisUnsettled (record 3 missed once)", err)
	}
	if !done[0] || !done[1] || done[2] {
		t.Fatalf("first write: done %v; want records 1 and 2 indexed, 3 waiting", done)
	}
	for i, want := range first {
		if batch[i].entry != want {
			t.Errorf("record %d: entry %q; want the first copy %q", i+1, batch[i].entry, want)
		}
		if got, _ := rc.Get(ctx, redisIndexPrefix+"g:"+testRecord(i+1).GatewayRequestID).Result(); got != want {
			t.Errorf("record %d indexed at %q; want %q", i+1, got, want)
		}
	}
	if got := m.redisDupRemoved.Load(); got != 1 {
		t.Errorf("duplicates removed = %d; want 1", got)
	}
	done, err = s.write(batch[2:])
	if err != nil || !done[0] {
		t.Fatalf("second write: done %v, err %v; want record 3 added", done, err)
	}
	msgs, err := rc.XRange(ctx, RedisStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	copies := map[string]int{}
	for _, msg := range msgs {
		copies[msg.Values["r"].(string)]++
	}
	for i, it := range batch {
		if copies[string(it.line)] != 1 {
			t.Errorf("record %d is in the stream %d times; want once", i+1, copies[string(it.line)])
		}
	}
	if got := m.redisUnverified.Load(); got != 0 {
		t.Errorf("unverified = %d; want 0 (the look-up read the whole stream)", got)
	}
}

// A dial that fails sent nothing: the retry adds the record without a
// look-up; a timeout after sending may have run.
func TestUncertainXAdd(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	err := c.XAdd(context.Background(), &redis.XAddArgs{Stream: "s", Values: []any{"r", "x"}}).Err()
	if err == nil || uncertainXAdd(err) {
		t.Errorf("connection refused (%v): uncertain; want certain", err)
	}
	if uncertainXAdd(redis.Nil) {
		t.Errorf("a Redis reply counted uncertain")
	}
	if !uncertainXAdd(context.DeadlineExceeded) {
		t.Errorf("a timeout counted certain")
	}
}
