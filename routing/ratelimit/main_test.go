package ratelimit

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the Redis-down tests would flood
	// the output. main does the same with a real logger.
	redis.SetLogger(NewClientLogger(slog.New(slog.DiscardHandler), time.Hour))
	os.Exit(m.Run())
}

func TestClientLogger(t *testing.T) {
	logs := &logCounter{}
	l := NewClientLogger(slog.New(logs), time.Hour)
	for i := range 100 {
		l.Printf(t.Context(), "failed to dial %d", i)
	}
	got := logs.lines("WARN")
	if len(got) != 1 || got[0] != "WARN redis client: failed to dial 0 suppressed=0" {
		t.Errorf("100 Printf calls logged %q; want the first line only", got)
	}
}
