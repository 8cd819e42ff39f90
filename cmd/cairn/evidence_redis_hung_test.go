package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/internal/redistest"
)

// A hung Redis (SIGSTOP for 3 s under 200 RPS, two replicas of the real
// binary): replica A keeps serving, holds its records in the backlog
// while Redis does not answer, and backfills the stream once it does
// (SIGCONT); replica B then finds every one of A's requests by ID (Redis
// kept its data, so from the first request on), and /metrics balances
// with 0 lost. The killed-Redis case is TestEvidenceRedisOutageBackfill.
func TestEvidenceRedisHungBackfill(t *testing.T) {
	rs := redistest.Start(t)
	mock := startMockProc(t, "mk")
	cfg := strings.NewReplacer("%[4]s", mock, "%[5]s", rs.URL()).Replace(replicaConfig)
	a := startRelGateway(t, cfg)
	b := startRelGateway(t, cfg)
	body := chatBody("support-bot", "")
	stop := make(chan struct{})
	res := make(chan []sent, 1)
	go func() { res <- load(a.api, body, 200, stop) }()
	time.Sleep(time.Second)
	rs.Pause()
	paused := time.Now()
	// Until the writer has seen Redis fail and holds records for it.
	for metricValue(t, metrics(t, a.admin), `cairn_capture_sink_pending{sink="redis"}`) < 50 {
		if time.Since(paused) > 10*time.Second {
			rs.Resume()
			t.Fatalf("no records held for Redis 10 s into the hang")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3*time.Second - time.Since(paused))
	backlog := metricValue(t, metrics(t, a.admin), `cairn_capture_sink_pending{sink="redis"}`)
	rs.Resume()
	time.Sleep(time.Second)
	close(stop)
	run := <-res
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := metrics(t, a.admin)
		if metricValue(t, m, `cairn_capture_sink_pending{sink="redis"}`) == 0 && metricValue(t, m, `cairn_capture_sink_pending{sink="file"}`) == 0 &&
			metricValue(t, m, "cairn_capture_queue_depth") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records still held 20 s after Redis answered again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	written, lost := checkIdentity(t, a.admin, "file", "redis")
	if lost["redis"] != 0 || lost["file"] != 0 {
		t.Errorf("lost: %v; want 0", lost)
	}
	failed, notFound := 0, 0
	for _, s := range run {
		if s.status != 200 {
			failed++
		}
		r, err := http.Get(b.admin + "/admin/requests/" + s.id)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(r.Body)
		r.Body.Close()
		if m := reqIDRe.FindSubmatch(buf.Bytes()); r.StatusCode != 200 || m == nil || string(m[1]) != s.id {
			notFound++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed while Redis hung", failed, len(run))
	}
	if notFound > 0 {
		t.Errorf("replica B does not find %d of A's %d requests after the hang", notFound, len(run))
	}
	if int(written["redis"]) != len(run) || int(written["file"]) != len(run) {
		t.Errorf("written file %v, redis %v; want %d each", written["file"], written["redis"], len(run))
	}
	// The batch in flight when Redis stopped runs when it resumes; the
	// retry finds it there and does not add it again: each request is in
	// the stream once.
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rc.Close()
	xlen, err := rc.XLen(context.Background(), capture.RedisStream).Result()
	if err != nil {
		t.Fatal(err)
	}
	dups := int(xlen) - len(run)
	if dups != 0 {
		t.Errorf("stream holds %d entries for %d requests; want each once", xlen, len(run))
	}
	m := metrics(t, a.admin)
	backfilled := metricValue(t, m, "cairn_capture_redis_backfilled_total")
	removed := metricValue(t, m, "cairn_capture_redis_duplicates_removed_total")
	unverified := metricValue(t, m, "cairn_capture_redis_unverified_total")
	if unverified != 0 {
		t.Errorf("cairn_capture_redis_unverified_total = %v; want 0", unverified)
	}
	t.Logf("figure: Redis hung (SIGSTOP) 3 s at 200 RPS: %d requests, %d failed, %v records held in the backlog, %v backfilled after SIGCONT, 0 lost; replica B finds %d/%d; stream entries %d (%d added twice; %v extra copies removed, %v unverified re-adds)",
		len(run), failed, backlog, backfilled, len(run)-notFound, len(run), xlen, dups, removed, unverified)
}
