package routing

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// sink keeps benchmark results alive.
var sink atomic.Int64

// BenchmarkPlan measures one request's target choice with a sticky value
// and without, from many goroutines at once.
//
//	go test -run '^$' -bench BenchmarkPlan -benchmem ./routing/
func BenchmarkPlan(b *testing.B) {
	tb, _ := newTestTable(b)
	r := tb.Route("support-bot")
	users := make([]string, 1024)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	for _, sticky := range []bool{true, false} {
		b.Run(fmt.Sprintf("sticky=%v", sticky), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var buf [8]*Target
				n := 0
				for i := 0; pb.Next(); i++ {
					s := ""
					if sticky {
						s = users[i&1023]
					}
					p, _ := r.Plan(buf[:0], s, rand.Uint64())
					n += len(p)
				}
				sink.Add(int64(n))
			})
		})
	}
}

// BenchmarkMatch measures route lookup by exact name and by glob.
func BenchmarkMatch(b *testing.B) {
	tb, _ := newTestTable(b)
	for _, m := range []string{"support-bot", "gpt-4o-mini", "claude"} {
		b.Run(m, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if tb.Match(m) == nil {
					b.Fatal("no route")
				}
			}
		})
	}
}
