package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// ClientLogger adapts go-redis's internal logging to slog with a rate
// limit: go-redis logs every failed dial, which while Redis is down means
// one line per request. Install it once from main with
// redis.SetLogger(ratelimit.NewClientLogger(logger, 10*time.Second));
// go-redis's logger is process-wide. It is safe for concurrent use.
type ClientLogger struct {
	log        *slog.Logger
	every      int64
	last       atomic.Int64
	suppressed atomic.Uint64
}

// NewClientLogger returns a logger writing at most one line per every
// (default 10s) at Warn level, with the count of lines it dropped since
// the last one.
func NewClientLogger(l *slog.Logger, every time.Duration) *ClientLogger {
	if every <= 0 {
		every = logEvery
	}
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &ClientLogger{log: l, every: int64(every)}
}

// Printf implements go-redis's internal.Logging.
func (c *ClientLogger) Printf(ctx context.Context, format string, v ...any) {
	now := time.Now().UnixNano()
	last := c.last.Load()
	if last != 0 && now-last < c.every || !c.last.CompareAndSwap(last, now) {
		c.suppressed.Add(1)
		return
	}
	c.log.WarnContext(ctx, "redis client: "+fmt.Sprintf(format, v...), "suppressed", c.suppressed.Swap(0))
}
