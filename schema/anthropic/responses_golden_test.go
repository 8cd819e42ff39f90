package anthropic

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/schema"
)

// goldenIn compares got with dir/<name of in>.golden (rewritten with
// -update): the Responses translations reuse the chat tests' Messages
// inputs and keep their own goldens.
func goldenIn(t *testing.T, dir, in string, got []byte) {
	t.Helper()
	base := strings.TrimSuffix(filepath.Base(in), filepath.Ext(in))
	golden(t, filepath.Join("testdata", dir, base+".json"), got)
}

// TestResponsesRequestGolden pins Responses → Messages request translation.
func TestResponsesRequestGolden(t *testing.T) {
	for _, f := range inputs(t, "responses_request", ".json") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, _ := os.ReadFile(f)
			out, perr := AppendResponsesRequest(nil, in, RequestOptions{Model: "claude-sonnet-4-5", MaxTokens: 4096})
			if perr != nil {
				t.Fatalf("AppendResponsesRequest = %v", perr)
			}
			golden(t, f, indent(t, out))
		})
	}
}

// TestResponsesResponseGolden pins Messages response → Responses object.
func TestResponsesResponseGolden(t *testing.T) {
	for _, f := range inputs(t, "response", ".json") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, _ := os.ReadFile(f)
			out, err := AppendResponsesResponse(nil, in, 1764720000)
			if err != nil {
				t.Fatalf("AppendResponsesResponse = %v", err)
			}
			goldenIn(t, "responses_response", f, indent(t, out))
		})
	}
}

// translateResponsesSSE runs an upstream SSE body through the real SSE
// parser and a ResponsesStream and returns the client's events, each
// after a comment naming the upstream event it came from.
func translateResponsesSSE(t testing.TB, in []byte) []byte {
	var s ResponsesStream
	s.Reset(1764720000)
	var p schema.SSEParser
	var out []byte
	err := p.Feed(in, func(ev schema.Event) error {
		out = append(out, ": "...)
		out = append(out, gjson.GetBytes(ev.Data, "type").Str...)
		out = append(out, '\n')
		err := s.Event(ev.Data, func(o schema.Event) error {
			if o.Done {
				t.Errorf("a Responses stream emitted [DONE]")
				return nil
			}
			if !json.Valid(o.Data) {
				t.Errorf("event is not JSON: %s", o.Data)
			}
			out = append(out, "event: "...)
			out = append(out, schema.ResponsesEventType(o.Data)...)
			out = append(out, '\n')
			out = schema.AppendSSEEvent(out, o.Data)
			return nil
		})
		if ee, ok := err.(*EventError); ok {
			out = append(out, "! "+ee.Error()+"\n"...)
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("translate: %v", err)
	}
	return out
}

// TestResponsesStreamGolden pins each stream event type's translation.
func TestResponsesStreamGolden(t *testing.T) {
	for _, f := range inputs(t, "stream", ".sse") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, _ := os.ReadFile(f)
			goldenIn(t, "responses_stream", f, translateResponsesSSE(t, in))
		})
	}
}

// TestResponsesStreamAccumulates: what the gateway's accumulator reads
// from the translated stream (text, calls, finish, usage, ID) is what the
// upstream said; the contract and the record depend on it.
func TestResponsesStreamAccumulates(t *testing.T) {
	for _, c := range []struct{ file, content, finish string }{
		{"text.sse", "Hello!\n\"ok\"", "stop"},
		{"tool_use.sse", "", "tool_calls"},
	} {
		in, _ := os.ReadFile("testdata/stream/" + c.file)
		var s ResponsesStream
		s.Reset(1)
		var a schema.StreamAccumulator
		a.ForResponses()
		var p schema.SSEParser
		if err := p.Feed(in, func(ev schema.Event) error {
			return s.Event(ev.Data, func(o schema.Event) error { a.Add(o.Data); return nil })
		}); err != nil {
			t.Fatal(err)
		}
		if c.content != "" && a.Content() != c.content {
			t.Errorf("%s: content %q, want %q", c.file, a.Content(), c.content)
		}
		if a.FinishReason() != c.finish {
			t.Errorf("%s: finish %q, want %q", c.file, a.FinishReason(), c.finish)
		}
		if c.finish == "tool_calls" && len(a.ToolCalls()) == 0 {
			t.Errorf("%s: no tool calls accumulated", c.file)
		}
		if !bytes.HasPrefix([]byte(a.ID()), []byte("msg_")) {
			t.Errorf("%s: id %q", c.file, a.ID())
		}
	}
}
