package capture

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/redistest"
)

// replicaFinds reports whether a second replica (Redis only, empty data
// dir) finds id.
func replicaFinds(t *testing.T, rep *Writer, id string) bool {
	r, err := rep.Lookup(context.Background(), id)
	return err == nil && r.GatewayRequestID == id
}

// streamCopies returns the distinct records (by gateway request ID) in the
// capture stream and the copies beyond the first.
func streamCopies(t *testing.T, rc *redis.Client) (distinct, extra int) {
	t.Helper()
	msgs, err := rc.XRange(context.Background(), RedisStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		v, _ := m.Values["r"].(string)
		id := gjson.Get(v, "gateway_request_id").String()
		if seen[id] {
			extra++
		}
		seen[id] = true
	}
	return len(seen), extra
}

// A Redis outage (killed, then restarted empty; and hung by SIGSTOP)
// keeps the records in a backlog; when Redis answers again they are
// backfilled into the stream so another replica finds each one by ID.
func TestRedisOutageBackfillsStream(t *testing.T) {
	for _, fault := range []string{"killed", "hung"} {
		t.Run(fault, func(t *testing.T) {
			rs := redistest.Start(t)
			rc := newRedisClient(t, rs)
			w := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Redis: rc})
			w.Start()
			rep := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Redis: newRedisClient(t, rs)})

			w.Enqueue(testRecord(0))
			waitFor(t, func() bool { return w.metrics.Accounting().Sinks["redis"].Written == 1 })
			if fault == "killed" {
				rs.Kill()
			} else {
				rs.Pause()
			}
			const n = 300
			for i := 1; i <= n; i++ {
				w.Enqueue(testRecord(i))
			}
			waitFor(t, func() bool { return w.metrics.Accounting().Queued == 0 })
			waitFor(t, func() bool { return w.Health().RedisFailing })
			a := checkBalanced(t, w)
			if p := a.Sinks["redis"].Pending; p != n {
				t.Errorf("redis backlog = %d during the outage; want %d", p, n)
			}
			if fault == "killed" {
				rs.Restart() // empty: record 0 is gone with it
			} else {
				rs.Resume()
			}
			waitFor(t, func() bool { return w.metrics.Accounting().Sinks["redis"].Pending == 0 })
			a = checkBalanced(t, w)
			if lost := a.Sinks["redis"].LostTotal(); lost != 0 {
				t.Errorf("redis lost %d records; want 0", lost)
			}
			if got := w.metrics.backfilled.Load(); got != n {
				t.Errorf("backfilled = %d; want %d", got, n)
			}
			// Each record is in the stream once: the batch in flight when
			// Redis stopped runs when it resumes, and the retry must not add
			// it again.
			want := n
			if fault == "hung" {
				want++ // Redis kept record 0
			}
			got, dups := streamCopies(t, rc)
			if got != want || dups != 0 {
				t.Errorf("stream holds %d distinct records, %d extra copies; want %d and 0", got, dups, want)
			}
			t.Logf("figure: %s Redis: %d records backlogged, %d backfilled, 0 lost, %d duplicates in the stream (%d removed, %d unverified)",
				fault, n, w.metrics.backfilled.Load(), dups, w.metrics.redisDupRemoved.Load(), w.metrics.redisUnverified.Load())
			for i := 1; i <= n; i++ {
				if id := testRecord(i).GatewayRequestID; !replicaFinds(t, rep, id) {
					t.Fatalf("another replica does not find %s after the backfill", id)
				}
			}
			if h := w.Health(); h.RedisFailing {
				t.Errorf("Health() still says Redis is failing after the backfill")
			}
		})
	}
}

// The backlog is bounded: past capture.redis_backlog records are lost to
// the stream (never to the files) and counted.
func TestRedisBacklogBoundCounted(t *testing.T) {
	rs := redistest.Start(t)
	rc := newRedisClient(t, rs)
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Redis: rc, Capture: configs.Capture{RedisBacklog: 50}})
	w.Start()
	rs.Kill()
	const n = 200
	for i := range n {
		w.Enqueue(testRecord(i))
	}
	waitFor(t, func() bool { return w.metrics.Accounting().Queued == 0 })
	a := checkBalanced(t, w)
	if got := a.Sinks["redis"].Lost["backlog_full"]; got < n-50 {
		t.Errorf("backlog_full = %d; want at least %d", got, n-50)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = w.Close(ctx)
	a = checkBalanced(t, w)
	if a.Sinks["redis"].Pending != 0 || a.Sinks["redis"].Lost["shutdown"] == 0 {
		t.Errorf("after Close with Redis down: %+v; want the backlog counted lost at shutdown", a.Sinks["redis"])
	}
	if got := len(checkLines(t, dir)); got != n {
		t.Errorf("files hold %d records; want all %d", got, n)
	}
}
