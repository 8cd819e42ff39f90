//go:build !race

package anthropic

import (
	"testing"

	"github.com/cairnhq/cairn/schema"
)

// TestResponsesStreamAllocs: once warm, translating a whole stream into
// Responses events allocates nothing, as for the chat translator.
func TestResponsesStreamAllocs(t *testing.T) {
	for _, f := range []string{"testdata/stream/tool_use.sse", "testdata/stream/text.sse", "testdata/stream/thinking_max_tokens.sse", "testdata/stream/error_after_content.sse"} {
		events := loadEvents(t, f)
		var s ResponsesStream
		emit := func(o schema.Event) error { sinkN += len(o.Data); return nil }
		run := func() {
			s.Reset(1764720000)
			for _, e := range events {
				_ = s.Event(e, emit)
			}
		}
		run()
		if n := testing.AllocsPerRun(100, run); n != 0 {
			t.Errorf("%s: %v allocations per stream of %d events; want 0", f, n, len(events))
		}
	}
}
