package anthropic

import (
	"testing"

	"github.com/cairnhq/cairn/schema"
)

// BenchmarkResponsesStreamTranslate measures translating the golden
// tool-use stream's events into typed Responses events (more events out
// than in: the done events and response.completed repeat the items).
// Allocations per op are the whole stream's and must stay 0
// (TestResponsesStreamAllocs). References in the same run:
// BenchmarkStreamTranslate (to chat chunks) and BenchmarkStreamRelayOnly.
func BenchmarkResponsesStreamTranslate(b *testing.B) {
	events := loadEvents(b, "testdata/stream/tool_use.sse")
	var s ResponsesStream
	out := 0
	emit := func(o schema.Event) error { sinkN += len(o.Data); out++; return nil }
	n := 0
	for _, e := range events {
		n += len(e)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		s.Reset(1764720000)
		for _, e := range events {
			if err := s.Event(e, emit); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(events)), "events/op")
	b.ReportMetric(float64(out)/float64(b.N), "out-events/op")
}
