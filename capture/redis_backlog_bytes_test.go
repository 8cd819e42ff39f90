package capture

import (
	"testing"

	"github.com/cairnhq/cairn/internal/redistest"
)

// Issue 15: while Redis is down, its backlog is bounded in bytes as well
// as records: large records past the bound are lost to the stream only
// (they are in the files), counted as backlog_full, and the bytes held
// never pass the bound; what was kept is backfilled when Redis returns.
func TestRedisBacklogBoundedInBytes(t *testing.T) {
	rs := redistest.Start(t)
	rc := newRedisClient(t, rs)
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Redis: rc})
	const bound = 1 << 20
	w.redis.maxBytes = bound
	w.Start()
	w.Enqueue(testRecord(0))
	waitFor(t, func() bool { return w.metrics.Accounting().Sinks["redis"].Written == 1 })
	rs.Kill()
	const n = 30 // ~100 KB each: 3 MB against a 1 MiB bound
	for i := 1; i <= n; i++ {
		w.Enqueue(bigRecord(i, 100<<10))
	}
	waitFor(t, func() bool { return w.metrics.Accounting().Queued == 0 })
	w.redis.mu.Lock()
	held, recs := w.redis.bytes, len(w.redis.backlog)
	w.redis.mu.Unlock()
	if held > bound || recs == 0 {
		t.Errorf("redis backlog holds %d bytes in %d records; want some, at most %d", held, recs, bound)
	}
	a := checkBalanced(t, w)
	lost := a.Sinks["redis"].Lost["backlog_full"]
	if lost == 0 || lost+uint64(recs) != n {
		t.Errorf("redis: %d backlogged, %d lost (backlog_full); want %d in all, some lost", recs, lost, n)
	}
	rs.Restart()
	waitFor(t, func() bool { return w.metrics.Accounting().Sinks["redis"].Pending == 0 })
	w.redis.mu.Lock()
	held = w.redis.bytes
	w.redis.mu.Unlock()
	if held != 0 {
		t.Errorf("backlog bytes after backfill = %d; want 0", held)
	}
	closeWriter(t, w)
	if recs := readRecords(t, dir); len(recs) != n+1 {
		t.Errorf("file records = %d; want %d (the files keep every record)", len(recs), n+1)
	}
}
