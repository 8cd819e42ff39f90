package capture

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 12.9: an embeddings input nested 1,000 deep was stored as nested
// JSON, so readers with a recursion limit (Python's json) failed on the
// whole capture line. Records stay shallow: such a body is a JSON string.
func TestRecordBodiesStayShallow(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir})
	w.Start()
	deep := strings.Repeat("[", 1000) + `"ann@example.com"` + strings.Repeat("]", 1000)
	r := testRecord(1)
	r.Endpoint = "embeddings"
	r.Raw = &RawBodies{
		RequestBody:  []byte(`{"model":"emb","input":` + deep + `}`),
		ResponseBody: []byte(`{"error":{"message":` + `"x"` + `,"detail":` + deep + `}}`),
	}
	r.Status, r.Outcome = 400, OutcomeUpstream4xx
	shallowRec := testRecord(2) // an ordinary body keeps its structure
	w.Enqueue(r)
	w.Enqueue(shallowRec)
	closeWriter(t, w)

	names, _ := listFiles(filepath.Join(dir, captureSubdir))
	var lines [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.Split(bytes.TrimSpace(b), []byte("\n"))...)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d lines; want 2", len(lines))
	}
	if d := jsonDepth(lines[0]); d > maxRecordDepth+2 {
		t.Fatalf("deep record line nests %d levels; want at most %d", d, maxRecordDepth+2)
	}
	var got Record
	if err := json.Unmarshal(lines[0], &got); err != nil {
		t.Fatalf("decode record: %v", err)
	}
	for name, body := range map[string]json.RawMessage{"request": got.Request, "response": got.Response} {
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			t.Errorf("%s = %.60s…; want a JSON string", name, body)
			continue
		}
		if strings.Contains(s, "ann@example.com") || !strings.Contains(s, PlaceholderEmail) {
			t.Errorf("%s string is not masked: %.80s", name, s)
		}
	}
	var ok Record
	if err := json.Unmarshal(lines[1], &ok); err != nil || !bytes.HasPrefix(ok.Request, []byte("[")) {
		t.Errorf("shallow request = %s (%v); want the messages array", ok.Request, err)
	}
}

func TestJSONDepth(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{`1`, 0}, {`[]`, 1}, {`{"a":[{"b":1}]}`, 3}, {`["[[[\"]]]"]`, 1}, {`["\\",[]]`, 2},
	} {
		if got := jsonDepth([]byte(tt.in)); got != tt.want {
			t.Errorf("jsonDepth(%q) = %d; want %d", tt.in, got, tt.want)
		}
	}
}
