package anthropic

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/*/*.golden from the current output")

// golden compares got with path's .golden file (rewritten with -update).
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	g := strings.TrimSuffix(path, filepath.Ext(path)) + ".golden"
	if *update {
		if err := os.WriteFile(g, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(g)
	if err != nil {
		t.Fatalf("read %s: %v (run with -update to create it)", g, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: translation differs from %s\n--- got\n%s\n--- want\n%s", path, g, got, want)
	}
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, b)
	}
	return append(out.Bytes(), '\n')
}

func inputs(t *testing.T, dir, ext string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*"+ext))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/%s/*%s: %v", dir, ext, err)
	}
	return files
}

// TestRequestGolden pins chat completions → Messages request translation.
func TestRequestGolden(t *testing.T) {
	for _, f := range inputs(t, "request", ".json") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, _ := os.ReadFile(f)
			out, perr := AppendRequest(nil, in, RequestOptions{Model: "claude-sonnet-4-5", MaxTokens: 4096})
			if perr != nil {
				t.Fatalf("AppendRequest = %v", perr)
			}
			golden(t, f, indent(t, out))
		})
	}
}

// TestResponseGolden pins Messages response → chat.completion translation.
func TestResponseGolden(t *testing.T) {
	for _, f := range inputs(t, "response", ".json") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, _ := os.ReadFile(f)
			out, err := AppendResponse(nil, in, 1764720000)
			if err != nil {
				t.Fatalf("AppendResponse = %v", err)
			}
			golden(t, f, indent(t, out))
		})
	}
}

// TestErrorGolden pins Messages error → OpenAI error (and status).
func TestErrorGolden(t *testing.T) {
	for _, f := range inputs(t, "error", ".json") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, _ := os.ReadFile(f)
			name := strings.TrimSuffix(filepath.Base(f), ".json")
			status, _ := strconv.Atoi(name[strings.LastIndexByte(name, '_')+1:])
			out, st := AppendError(nil, in, status)
			got := append([]byte("status "+strconv.Itoa(st)+"\n"), indent(t, out)...)
			golden(t, f, got)
		})
	}
}

// translateSSE runs an upstream SSE body through the real SSE parser and
// a Stream, and returns the client's SSE body with each upstream event's
// type as a comment before what it became.
func translateSSE(t testing.TB, in []byte, includeUsage bool) []byte {
	var s Stream
	s.Reset(1764720000, includeUsage)
	var p schema.SSEParser
	var out []byte
	err := p.Feed(in, func(ev schema.Event) error {
		out = append(out, ": "...)
		out = append(out, gjson.GetBytes(ev.Data, "type").Str...)
		out = append(out, '\n')
		return s.Event(ev.Data, func(o schema.Event) error {
			if o.Done {
				out = append(out, "data: [DONE]\n\n"...)
				return nil
			}
			if !json.Valid(o.Data) {
				t.Errorf("chunk is not JSON: %s", o.Data)
			}
			out = schema.AppendSSEEvent(out, o.Data)
			return nil
		})
	})
	if err != nil {
		t.Fatalf("translate: %v", err)
	}
	return out
}

// TestStreamGolden pins each stream event type's translation.
func TestStreamGolden(t *testing.T) {
	for _, f := range inputs(t, "stream", ".sse") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, _ := os.ReadFile(f)
			golden(t, f, translateSSE(t, in, true))
		})
	}
}

// TestStreamNoUsageChunk: without include_usage no usage chunk is sent.
func TestStreamNoUsageChunk(t *testing.T) {
	in, _ := os.ReadFile("testdata/stream/text.sse")
	out := translateSSE(t, in, false)
	if bytes.Contains(out, []byte(`"usage"`)) {
		t.Errorf("stream without include_usage carries usage:\n%s", out)
	}
	if !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
		t.Errorf("stream does not end with [DONE]:\n%s", out)
	}
}
