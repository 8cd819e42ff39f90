package ratelimit

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDedupBoundedByTime: a busy key charging 2,000 distinct request IDs
// a second for five minutes (600k IDs; the old maps kept up to 2M) remembers only the last two
// minutes' worth, never more than the ring's cap, still deduplicates a
// repeat within the window, forgets after it, and counts what it could
// not remember. The maps it replaced grew to ~2M IDs per busy key.
func TestDedupBoundedByTime(t *testing.T) {
	c := newClock(t0)
	l := NewMemory(c.now)
	ctx := context.Background()
	lim := Limits{TPM: 1 << 40}
	const perSec = 2000
	maxHeld := 0
	id := 0
	for sec := range 300 {
		for range perSec {
			l.Charge(ctx, "busy", lim, "req-"+strconv.Itoa(id), 1, Reservation{})
			id++
		}
		c.add(time.Second)
		if sec == 100 {
			// A repeat of an ID charged 30s ago is still recognised.
			before := l.check("busy", lim).RemainingTokens
			l.Charge(ctx, "busy", lim, "req-"+strconv.Itoa(id-30*perSec), 1, Reservation{})
			if after := l.check("busy", lim).RemainingTokens; after != before {
				t.Errorf("repeat of a 30s-old ID charged again: remaining %d -> %d", before, after)
			}
		}
		b := l.bucket("busy")
		b.mu.Lock()
		maxHeld = max(maxHeld, b.charged.size())
		b.mu.Unlock()
	}
	t.Logf("%d IDs charged at %d/s: at most %d remembered at once", id, perSec, maxHeld)
	if limit := dedupBuckets * dedupBucketIDs; maxHeld > limit {
		t.Errorf("remembered %d IDs at once; want ≤ %d", maxHeld, limit)
	}
	if want := (dedupBuckets + 1) * int(dedupSpan/time.Second) * perSec; maxHeld > want {
		t.Errorf("remembered %d IDs at once; want ≤ %d (the ring's span at %d/s)", maxHeld, want, perSec)
	}
	// An ID from four minutes ago is forgotten: charged again.
	before := l.check("busy", lim).RemainingTokens
	l.Charge(ctx, "busy", lim, "req-0", 1, Reservation{})
	if after := l.check("busy", lim).RemainingTokens; after != before-1 {
		t.Errorf("ID from 5 minutes ago: remaining %d -> %d; want charged (forgotten)", before, after)
	}

	if got := l.m.dedupDropped.Load(); got != 0 {
		t.Errorf("%d IDs dropped at %d/s; want 0", got, perSec)
	}
	// Past a bucket's cap the charge counts and the drop is counted.
	for i := range dedupBucketIDs + 10 {
		l.Charge(ctx, "flood", lim, "f-"+strconv.Itoa(i), 1, Reservation{})
	}
	if got := l.m.dedupDropped.Load(); got != 10 {
		t.Errorf("dedup drops = %d; want 10", got)
	}
	var buf bytes.Buffer
	l.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), "cairn_ratelimit_dedup_dropped_total 10\n") {
		t.Errorf("metrics lack the drops:\n%s", buf.String())
	}
}
