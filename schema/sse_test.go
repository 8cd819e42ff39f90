package schema

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// sseRun feeds the chunks to a fresh parser, flushes it, and returns the
// events as strings ("[DONE]" events marked with a trailing "!") and the
// first error.
func sseRun(max int, chunks ...[]byte) ([]string, error) {
	p := SSEParser{MaxEventSize: max}
	var got []string
	fn := func(e Event) error {
		s := string(e.Data)
		if e.Done {
			s += "!"
		}
		got = append(got, s)
		return nil
	}
	for _, c := range chunks {
		if err := p.Feed(c, fn); err != nil {
			return got, err
		}
	}
	return got, p.Flush(fn)
}

func TestSSEParser(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"basic", "data: a\n\ndata: b\n\ndata: [DONE]\n\n", []string{"a", "b", "[DONE]!"}},
		{"CRLF", "data: a\r\n\r\ndata: [DONE]\r\n\r\n", []string{"a", "[DONE]!"}},
		{"CR", "data: a\r\rdata: b\r\r", []string{"a", "b"}},
		{"mixed breaks", "data: a\r\ndata: b\rdata: c\n\r\n", []string{"a\nb\nc"}},
		{"multi-line data", "data: {\"a\":\ndata: 1}\n\n", []string{"{\"a\":\n1}"}},
		{"no space after colon", "data:x\n\n", []string{"x"}},
		{"only one space stripped", "data:  x \n\n", []string{" x "}},
		{"data without colon", "data\n\n", []string{""}},
		{"empty data", "data:\n\n", []string{""}},
		{"two empty data lines", "data:\ndata:\n\n", []string{"\n"}},
		{"comments", ": keep-alive\n\n: ping\ndata: a\n: more\n\n", []string{"a"}},
		{"other fields ignored", "event: message\nid: 7\nretry: 100\ndata: a\nfoo\n\n", []string{"a"}},
		{"field names are case-sensitive", "Data: a\n\n", nil},
		{"blank lines alone", "\n\n\r\n\r\r", nil},
		{"no blank line at end", "data: a\n\ndata: b\n", []string{"a", "b"}},
		{"no line break at end", "data: a\n\ndata: [DONE]", []string{"a", "[DONE]!"}},
		{"no [DONE]", "data: {\"x\":1}\n\n", []string{`{"x":1}`}},
		{"BOM", "\xEF\xBB\xBFdata: a\n\n", []string{"a"}},
		{"BOM only at start", "data: a\n\n\xEF\xBB\xBFdata: b\n\n", []string{"a"}},
		{"done without space", "data:[DONE]\n\n", []string{"[DONE]!"}},
		{"done is whole data", "data: [DONE] x\n\n", []string{"[DONE] x"}},
		{"colon in value", "data: {\"a\":\"b:c\"}\n\n", []string{`{"a":"b:c"}`}},
		{"error event", "data: {\"error\":{\"message\":\"x\"}}\n\n", []string{`{"error":{"message":"x"}}`}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			got, err := sseRun(0, in)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("SSE(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			for i := 0; i <= len(in); i++ {
				got, err := sseRun(0, in[:i], in[i:])
				if err != nil || !reflect.DeepEqual(got, tt.want) {
					t.Errorf("SSE(%q split at %d) = %q, %v; want %q", tt.in, i, got, err, tt.want)
				}
			}
			var bytewise [][]byte
			for i := range in {
				bytewise = append(bytewise, in[i:i+1])
			}
			if got, err := sseRun(0, bytewise...); err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SSE(%q byte by byte) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSSEParserLimits(t *testing.T) {
	long := "data: " + strings.Repeat("x", 100) + "\n\n"
	if _, err := sseRun(64, []byte(long)); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("SSE(long line, max 64) = %v; want ErrEventTooLarge", err)
	}
	many := strings.Repeat("data: 0123456789\n", 10) + "\n"
	if _, err := sseRun(64, []byte(many)); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("SSE(many lines, max 64) = %v; want ErrEventTooLarge", err)
	}
	comment := ":" + strings.Repeat("x", 100)
	if _, err := sseRun(64, []byte(comment[:50]), []byte(comment[50:])); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("SSE(long partial comment, max 64) = %v; want ErrEventTooLarge", err)
	}
	if got, err := sseRun(64, []byte("data: ok\n\n")); err != nil || len(got) != 1 {
		t.Errorf("SSE(small, max 64) = %q, %v", got, err)
	}

	var p SSEParser
	p.MaxEventSize = 16
	nop := func(Event) error { return nil }
	if err := p.Feed([]byte(long), nop); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("Feed(long) = %v", err)
	}
	if err := p.Feed([]byte("data: a\n\n"), nop); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("Feed after ErrEventTooLarge = %v; want the error again", err)
	}
	p.Reset()
	n := 0
	if err := p.Feed([]byte("data: a\n\n"), func(Event) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("Feed after Reset = %v, %d events; want nil, 1", err, n)
	}
}

func TestAppendSSEEvent(t *testing.T) {
	tests := []struct{ data, want string }{
		{`{"a":1}`, "data: {\"a\":1}\n\n"},
		{"", "data: \n\n"},
		{"a\nb", "data: a\ndata: b\n\n"},
		{"a\r\nb\rc\n", "data: a\ndata: b\ndata: c\ndata: \n\n"},
		{"[DONE]", "data: [DONE]\n\n"},
	}
	for _, tt := range tests {
		got := AppendSSEEvent(nil, []byte(tt.data))
		if string(got) != tt.want {
			t.Errorf("AppendSSEEvent(%q) = %q; want %q", tt.data, got, tt.want)
		}
		events, err := sseRun(0, got)
		norm := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(tt.data)
		if err != nil || len(events) != 1 || strings.TrimSuffix(events[0], "!") != norm {
			t.Errorf("parse(AppendSSEEvent(%q)) = %q, %v; want [%q]", tt.data, events, err, norm)
		}
	}
}

func TestSSEParserCallbackError(t *testing.T) {
	var p SSEParser
	stop := errors.New("client gone")
	n := 0
	err := p.Feed([]byte("data: a\n\ndata: b\n\n"), func(Event) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("Feed = %v after %d events; want %v after 1", err, n, stop)
	}
}

func TestSSEParserReuse(t *testing.T) {
	var p SSEParser
	var got []string
	fn := func(e Event) error { got = append(got, string(e.Data)); return nil }
	_ = p.Feed([]byte("data: a\r"), fn)
	_ = p.Flush(fn)
	// A new stream after Flush: its leading LF is not part of the old CR.
	_ = p.Feed([]byte("\xEF\xBB\xBFdata: b\n\n"), fn)
	if !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("events = %q; want [a b]", got)
	}
}

// splitAt cuts b at the positions the seed picks.
func splitAt(b []byte, seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out [][]byte
	for len(b) > 0 && n > 0 {
		i := r.IntN(len(b) + 1)
		out = append(out, b[:i])
		b = b[i:]
		n--
	}
	return append(out, b)
}

func FuzzSSE(f *testing.F) {
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"), uint64(1), uint8(3))
	f.Add([]byte("data: a\r\n\r\ndata: b\rdata: c\r\r: x\n\n"), uint64(7), uint8(9))
	f.Add([]byte("\xEF\xBB\xBFdata: {\"error\":{}}\n\ndata"), uint64(3), uint8(1))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"\"}}]}}]}\n\n"+
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"a\\\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n"+
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n"), uint64(11), uint8(20))
	f.Add([]byte(strings.Repeat("data: "+strings.Repeat("z", 40)+"\n", 10)), uint64(5), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, n uint8) {
		const max = 256
		run := func(chunks [][]byte) (string, error) {
			var p SSEParser
			p.MaxEventSize = max
			var a StreamAccumulator
			var sb strings.Builder
			fn := func(e Event) error {
				fmt.Fprintf(&sb, "%q %v|", e.Data, e.Done)
				// Relaying an event re-frames it; it must read back the same.
				var back []byte
				var q SSEParser
				_ = q.Feed(AppendSSEEvent(nil, e.Data), func(e2 Event) error { back = append(back, e2.Data...); return nil })
				if string(back) != string(e.Data) {
					t.Fatalf("AppendSSEEvent(%q) reads back as %q", e.Data, back)
				}
				if !e.Done {
					a.Add(e.Data)
				}
				return nil
			}
			for _, c := range chunks {
				if err := p.Feed(c, fn); err != nil {
					return sb.String(), err
				}
			}
			err := p.Flush(fn)
			u, ok := a.Usage()
			fmt.Fprintf(&sb, "\n%q %q %+v %q %v %v %q %v", a.Content(), a.FinishReason(), a.ToolCalls(), a.Model(), u, ok, a.Err(), a.LegacyFunctionCall())
			return sb.String(), err
		}
		want, wantErr := run([][]byte{in})
		got, gotErr := run(splitAt(in, seed, int(n)))
		if !errors.Is(gotErr, wantErr) || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("split error %v; unsplit %v", gotErr, wantErr)
		}
		if got != want {
			t.Fatalf("split result\n%s\nunsplit\n%s", got, want)
		}
	})
}
