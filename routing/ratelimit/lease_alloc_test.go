//go:build !race

package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/redistest"
)

// TestRedisCheckAllocs is the allocation budget of a Redis limiter check
// spent from the leased slice: no Redis call, no allocation.
func TestRedisCheckAllocs(t *testing.T) {
	srv := redistest.Start(t)
	l, _ := newTestRedis(t, srv, RedisOptions{Timeout: time.Second})
	ctx := context.Background()
	lim := Limits{RPM: 1 << 40, TPM: 1 << 40}
	l.Check(ctx, "app", lim, "id")
	for _, _, f := held(l, "app"); f; _, _, f = held(l, "app") {
		time.Sleep(time.Millisecond)
	}
	if n := testing.AllocsPerRun(1000, func() { l.Check(ctx, "app", lim, "id") }); n != 0 {
		t.Errorf("Redis.Check from the slice allocates %v times per call; want 0", n)
	}
}
