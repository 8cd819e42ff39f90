package anthropic

import (
	"bytes"
	"testing"

	"github.com/cairnhq/cairn/schema"
)

// An Anthropic upstream is not ours: a body or stream event of 5.6 MiB of
// '[' overflowed the goroutine stack in gjson's recursive validator, a
// fatal error no recover catches (issue 12.1's rule holds for every
// provider kind). Each reader refuses it without recursing.
func TestUpstreamNestingBombRefused(t *testing.T) {
	bomb := bytes.Repeat([]byte{'['}, 5600<<10)
	if _, err := AppendResponse(nil, bomb, 1); err == nil {
		t.Error("AppendResponse accepted a nesting bomb")
	}
	if _, err := AppendResponsesResponse(nil, bomb, 1); err == nil {
		t.Error("AppendResponsesResponse accepted a nesting bomb")
	}
	if _, status := AppendError(nil, bomb, 500); status == 0 {
		t.Error("AppendError gave no status for a nesting bomb")
	}
	emit := func(schema.Event) error { return nil }
	var s Stream
	s.Reset(1, true)
	if err := s.Event(bomb, emit); err == nil {
		t.Error("Stream.Event accepted a nesting bomb")
	}
	var r ResponsesStream
	r.Reset(1)
	if err := r.Event(bomb, emit); err == nil {
		t.Error("ResponsesStream.Event accepted a nesting bomb")
	}
}
