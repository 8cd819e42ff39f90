package proxy

import (
	"testing"
)

// BenchmarkHotPath measures one non-streaming chat request through a bare
// fasthttp hop and through Cairn (capture on with every body sampled, a
// json_object request; cairn+schema adds a route JSON Schema contract) in
// front of an
// upstream and a client that allocate nothing, so allocs/op is what the
// proxy allocates (Cairn's includes its capture writer's work for the
// record). Compare the two in one run:
//
//	go test ./proxy -run '^$' -bench HotPath -benchtime 20000x -count 6 | tee new.txt
func BenchmarkHotPath(b *testing.B) {
	for _, mode := range []string{"hop", "cairn", "cairn+schema"} {
		b.Run(mode, func(b *testing.B) {
			url, _ := hotTarget(b, mode)
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := newHotClient(url)
				defer c.release()
				for pb.Next() {
					if err := c.post(hotBody); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
