package anthropic

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairnhq/cairn/schema"
)

// FuzzResponsesStream: arbitrary upstream bytes, split anywhere, through
// the SSE parser and the Responses translator: no panic, every event is
// a JSON object with a type, no [DONE], and nothing follows the terminal
// response.completed / response.incomplete / error.
func FuzzResponsesStream(f *testing.F) {
	files, _ := filepath.Glob("testdata/stream/*.sse")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b, uint16(len(b)/3))
	}
	f.Add([]byte("data: {\"type\":\"content_block_delta\",\"index\":99999999,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"x\"}}\n\n"), uint16(7))
	f.Add([]byte("data: {\"type\":\"content_block_start\",\"index\":-1,\"content_block\":{\"type\":\"text\"}}\n\n"), uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		var s ResponsesStream
		s.Reset(1)
		var p schema.SSEParser
		ended := false
		fn := func(ev schema.Event) error {
			return s.Event(ev.Data, func(o schema.Event) error {
				if o.Done {
					t.Fatalf("[DONE] on a Responses stream")
				}
				if ended {
					t.Fatalf("event after the end: %q", o.Data)
				}
				var m map[string]any
				if err := json.Unmarshal(o.Data, &m); err != nil || m["type"] == nil {
					t.Fatalf("event is not a typed JSON object: %q", o.Data)
				}
				switch m["type"] {
				case "response.completed", "response.incomplete", "error":
					ended = true
				}
				return nil
			})
		}
		c := min(int(cut), len(in))
		if err := p.Feed(in[:c], fn); err != nil {
			return
		}
		if err := p.Feed(in[c:], fn); err != nil {
			return
		}
		_ = p.Flush(fn)
	})
}

// FuzzResponsesRequest: whatever the body, AppendResponsesRequest either
// names a parameter (leaving dst as it was) or produces a JSON object.
func FuzzResponsesRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/responses_request/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`{"model":"m","input":[{"role":"assistant","content":""},{"role":"user","content":"x"},{"role":"assistant","content":[]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, perr := AppendResponsesRequest([]byte("x"), body, RequestOptions{MaxTokens: 10})
		if perr != nil {
			if string(out) != "x" {
				t.Fatalf("dst changed on error %v: %q", perr, out)
			}
			return
		}
		var m map[string]any
		if err := json.Unmarshal(out[1:], &m); err != nil {
			t.Fatalf("AppendResponsesRequest(%q) = %q: not a JSON object", body, out[1:])
		}
	})
}
