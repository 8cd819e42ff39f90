package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/redistest"
)

// sink keeps benchmark results alive.
var sink atomic.Int64

// BenchmarkMemoryCheck measures an admitted in-memory check from many
// goroutines, all on one key (worst contention) and spread over 64 keys.
//
//	go test -run '^$' -bench . -benchmem ./routing/ratelimit/
func BenchmarkMemoryCheck(b *testing.B) {
	for _, keys := range []int{1, 64} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			benchmarkMemoryCheck(b, keys)
		})
	}
}

func benchmarkMemoryCheck(b *testing.B, keys int) {
	l := NewMemory(nil)
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("key-%d", i)
	}
	lim := Limits{RPM: 1 << 40, TPM: 1 << 40}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for i := 0; pb.Next(); i++ {
			if l.Check(ctx, names[i%keys], lim, "").Allowed {
				n++
			}
		}
		sink.Add(int64(n))
	})
}

// BenchmarkRedisCheck measures a check of the Redis limiter against a
// real local Redis: spent from the leased slice, with the refills running
// in the background (one Lua call per slice, not per check). serial shows
// the latency, parallel the throughput of one limiter; charge is a whole
// request: check, then settle its usage against the reservation.
//
//	go test -run '^$' -bench RedisCheck -benchmem -count 5 ./routing/ratelimit/
func BenchmarkRedisCheck(b *testing.B) {
	srv := redistest.Start(b)
	l, _ := newTestRedis(b, srv, RedisOptions{Timeout: time.Second})
	lim := Limits{RPM: 1 << 40, TPM: 1 << 40}
	ctx := context.Background()
	l.Check(ctx, "app", lim, "") // loads the script
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if l.Check(ctx, "app", lim, "").Degraded {
				b.Fatal("degraded")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var degraded atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if l.Check(ctx, "app", lim, "").Degraded {
					degraded.Add(1)
				}
			}
		})
		if n := degraded.Load(); n > 0 {
			b.Errorf("%d degraded checks", n)
		}
	})
	b.Run("charge", func(b *testing.B) {
		b.ReportAllocs()
		ids := make([]string, 1<<16)
		for i := range ids {
			ids[i] = fmt.Sprint("req-", i)
		}
		i := 0
		for b.Loop() {
			i++
			d := l.Check(ctx, "app", lim, "")
			l.Charge(ctx, "app", lim, ids[i%len(ids)], 10, d.Reservation)
		}
	})
}
