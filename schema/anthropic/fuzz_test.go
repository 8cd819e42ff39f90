package anthropic

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairnhq/cairn/schema"
)

// FuzzStream feeds arbitrary upstream bytes, split at an arbitrary point,
// through the SSE parser and the Anthropic stream translator: it must
// never panic, every chunk it emits must be JSON, and nothing may follow
// [DONE]. The seed corpus is the golden streams.
func FuzzStream(f *testing.F) {
	files, _ := filepath.Glob("testdata/stream/*.sse")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b, uint16(len(b)/3))
	}
	f.Add([]byte("data: {\"type\":\"content_block_delta\",\"index\":99999999,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"x\"}}\n\n"), uint16(7))
	f.Add([]byte("data: {\"type\":\"content_block_start\",\"index\":-1,\"content_block\":{\"type\":\"tool_use\"}}\n\n"), uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		var s Stream
		s.Reset(1, true)
		var p schema.SSEParser
		done := false
		fn := func(ev schema.Event) error {
			return s.Event(ev.Data, func(o schema.Event) error {
				if done {
					t.Fatalf("event after [DONE]: %q", o.Data)
				}
				if o.Done {
					done = true
					return nil
				}
				if !json.Valid(o.Data) {
					t.Fatalf("chunk is not JSON: %q", o.Data)
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

// FuzzRequest: whatever the body, AppendRequest either names a parameter
// it cannot translate (leaving dst as it was) or produces a JSON object.
func FuzzRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/request/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`{"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"s"}]},{"role":"user","content":"x"},{"role":"user","content":"y"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, perr := AppendRequest([]byte("x"), body, RequestOptions{MaxTokens: 10})
		if perr != nil {
			if string(out) != "x" {
				t.Fatalf("dst changed on error %v: %q", perr, out)
			}
			return
		}
		if !json.Valid(out[1:]) {
			t.Fatalf("AppendRequest(%q) = %q: not JSON", body, out[1:])
		}
	})
}
