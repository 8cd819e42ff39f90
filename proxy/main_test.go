package proxy

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/routing/ratelimit"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial, process-wide; the Redis-down tests
	// would flood the output. cmd/cairn installs the same logger with the
	// real slog handler.
	redis.SetLogger(ratelimit.NewClientLogger(slog.New(slog.DiscardHandler), time.Hour))
	os.Exit(m.Run())
}
