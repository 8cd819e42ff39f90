package anthropic

import (
	"os"
	"testing"

	"github.com/cairnhq/cairn/schema"
)

var sinkN int

// BenchmarkStreamTranslate measures translating the golden tool-use
// stream's events (parsed once, outside the loop) into chunks: the
// allocations per op are the whole stream's, and must stay 0 once the
// Stream's buffers have grown (TestStreamTranslateAllocs).
// Reference in the same run: BenchmarkStreamRelayOnly, the same events
// copied into a buffer without translation.
func BenchmarkStreamTranslate(b *testing.B) {
	events := loadEvents(b, "testdata/stream/tool_use.sse")
	var s Stream
	emit := func(o schema.Event) error { sinkN += len(o.Data); return nil }
	n := 0
	for _, e := range events {
		n += len(e)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		s.Reset(1764720000, true)
		for _, e := range events {
			if err := s.Event(e, emit); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(events)), "events/op")
}

// BenchmarkStreamRelayOnly is the reference: the same events copied as a
// plain relay would.
func BenchmarkStreamRelayOnly(b *testing.B) {
	events := loadEvents(b, "testdata/stream/tool_use.sse")
	var out []byte
	n := 0
	for _, e := range events {
		n += len(e)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range events {
			out = append(out[:0], e...)
			sinkN += len(out)
		}
	}
	b.ReportMetric(float64(len(events)), "events/op")
}

func loadEvents(tb testing.TB, path string) [][]byte {
	in, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var events [][]byte
	var p schema.SSEParser
	_ = p.Feed(in, func(ev schema.Event) error {
		events = append(events, append([]byte(nil), ev.Data...))
		return nil
	})
	return events
}
