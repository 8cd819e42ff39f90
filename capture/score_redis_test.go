package capture

import (
	"context"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/redistest"
)

// Issue 16.1 with replicas: a score posted to replica B for a request
// replica A served is joined through the Redis index, and replica A lists
// it from Redis (its own memory and files never saw the score).
func TestScoresAcrossReplicas(t *testing.T) {
	rs := redistest.Start(t)
	a := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Redis: newRedisClient(t, rs)})
	b := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Redis: newRedisClient(t, rs)})
	a.Start()
	b.Start()
	r := testRecord(1)
	r.GatewayRequestID = gwID(1)
	a.Enqueue(r)
	ctx := context.Background()
	var recs []*Record
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		recs, err = b.Resolve(ctx, []string{"req_prov_0001"})
		if err == nil && recs[0] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica B did not resolve replica A's request: %v, %v", recs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if recs[0].GatewayRequestID != gwID(1) {
		t.Fatalf("resolved %q", recs[0].GatewayRequestID)
	}
	if err := b.AddScores(ctx, []Score{JoinScore(recs[0], "faithfulness", 0.3, "judge", time.Time{}, time.Now())}); err != nil {
		t.Fatal(err)
	}
	got := a.ScoresOf(ctx, gwID(1))
	if len(got) != 1 || got[0].Value != 0.3 || got[0].Route != "support-bot" {
		t.Errorf("replica A lists %+v; want the score B stored", got)
	}
	m, err := a.Find(ctx, "client-0001")
	if err != nil || len(m.Scores) != 1 {
		t.Errorf("replica A Find = %+v, %v; want the record with its score", m.Scores, err)
	}
}
