package ratelimit

import (
	"context"
	"io"
	"sync"
	"time"
)

// Memory limits keys within one process. It is safe for concurrent use
// and lives as long as the gateway; it keeps one small bucket per key name
// it has seen (configured keys, so bounded by the config).
type Memory struct {
	now     func() time.Time
	buckets sync.Map // key name -> *bucket
	m       metrics
}

// bucket is one key's current window. Its fields are guarded by mu.
type bucket struct {
	mu     sync.Mutex
	win    int64 // window number: nanoseconds since the epoch / Window
	reqs   int
	tokens int
	// charged remembers the request IDs charged in the last two minutes
	// (bounded by time and size: see dedupRing).
	charged dedupRing
}

// NewMemory returns an in-memory limiter reading time from now (nil:
// time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now}
}

// Check counts one request for key and reports whether it may proceed. It
// refuses with KindRequests when the window's RPM is used up and with
// KindTokens when its TPM is spent. A refused request is not counted.
// ctx and reqID are unused (the Redis limiter uses them).
func (l *Memory) Check(_ context.Context, key string, lim Limits, _ string) Decision {
	if lim.RPM <= 0 && lim.TPM <= 0 {
		return Decision{Allowed: true}
	}
	d := l.check(key, lim)
	if !d.Allowed {
		l.m.countLimited(key, d.Kind)
	}
	return d
}

// Charge adds tokens of actual usage to key's current window. It is
// idempotent per reqID (an empty reqID is never deduplicated) and may push
// the window past its TPM. It does nothing when TPM is 0.
// The reservation is unused: Memory charges the usage itself.
func (l *Memory) Charge(_ context.Context, key string, lim Limits, reqID string, tokens int, _ Reservation) {
	if lim.TPM <= 0 || tokens <= 0 {
		return
	}
	l.charge(key, reqID, tokens)
}

// WritePrometheus writes cairn_ratelimit_limited_total in Prometheus text
// format.
func (l *Memory) WritePrometheus(w io.Writer) { l.m.writePrometheus(w) }

func (l *Memory) bucket(key string) *bucket {
	if v, ok := l.buckets.Load(key); ok {
		return v.(*bucket)
	}
	v, _ := l.buckets.LoadOrStore(key, new(bucket))
	return v.(*bucket)
}

// window returns the current window number and the time left in it.
func (l *Memory) window() (int64, time.Duration) {
	ns := l.now().UnixNano()
	win := ns / int64(Window)
	if ns < 0 && ns%int64(Window) != 0 {
		win--
	}
	return win, time.Duration((win+1)*int64(Window) - ns)
}

// roll moves b to window win, clearing the counts. A clock that steps
// back stays in the newer window.
func (b *bucket) roll(win int64) {
	if win <= b.win {
		return
	}
	b.win, b.reqs, b.tokens = win, 0, 0
}

// check decides and counts without touching the metrics.
func (l *Memory) check(key string, lim Limits) Decision {
	win, reset := l.window()
	b := l.bucket(key)
	b.mu.Lock()
	b.roll(win)
	kind := ""
	switch {
	case lim.RPM > 0 && b.reqs >= lim.RPM:
		kind = KindRequests
	case lim.TPM > 0 && b.tokens >= lim.TPM:
		kind = KindTokens
	default:
		b.reqs++
	}
	reqs, tokens := b.reqs, b.tokens
	b.mu.Unlock()
	return decide(lim, kind, reqs, tokens, reset)
}

func (l *Memory) charge(key, reqID string, tokens int) {
	now := l.now()
	win, _ := l.window()
	b := l.bucket(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(win)
	if reqID != "" && b.charged.seen(reqID, now, &l.m.dedupDropped) {
		return
	}
	b.tokens += tokens
}
