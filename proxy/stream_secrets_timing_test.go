package proxy

import (
	"fmt"
	"testing"

	"github.com/cairnhq/cairn/capture"
)

// BenchmarkSplitGuard is the per-event cost of following streamed content
// for secrets cut across chunks, on ordinary chunks (nothing held).
func BenchmarkSplitGuard(b *testing.B) {
	var keys []string
	for i := range 8 {
		keys = append(keys, fmt.Sprintf("sk-proj-%032d", i))
	}
	g := &splitGuard{s: capture.NewSecrets(keys...)}
	ev := contentChunk(" the refund was issued")
	out := make([][]byte, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		out = g.add(out[:0], ev)
	}
	if len(out) != 1 {
		b.Fatal("held an ordinary chunk")
	}
}
