package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReadSSE(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      error
	}{
		{"events", "data: a\n\ndata: b\n\n", []string{"a", "b"}, nil},
		{"crlf and no space", "data:a\r\n\r\n", []string{"a"}, nil},
		{"multi-line data", "data: a\ndata: b\n\n", []string{"a\nb"}, nil},
		{"comments and fields", ": keep-alive\n\nevent: x\nid: 1\ndata: a\nretry: 5\n\n", []string{"a"}, nil},
		{"blank lines only", "\n\n\n", nil, nil},
		{"cut mid-event", "data: a\n\ndata: b", []string{"a"}, io.ErrUnexpectedEOF},
		{"cut before blank line", "data: a\n", nil, io.ErrUnexpectedEOF},
		{"long line", "data: " + strings.Repeat("x", 100000) + "\n\n", []string{strings.Repeat("x", 100000)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := readSSE(strings.NewReader(tt.in), func(d []byte) error {
				got = append(got, string(d))
				return nil
			})
			if !errors.Is(err, tt.err) || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("readSSE(%.40q) = %.60q, %v; want %.60q, %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func FuzzReadSSE(f *testing.F) {
	for _, s := range []string{"data: a\n\n", "data:\n\n", ":c\n\ndata: [DONE]\n\n", "data: a\r\ndata: b\r\n\r\n", "data: x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n := 0
		readSSE(strings.NewReader(in), func(d []byte) error { //nolint:errcheck // only must not panic
			if len(d) > len(in) {
				t.Fatalf("event of %d bytes from %d input bytes", len(d), len(in))
			}
			n++
			return nil
		})
		if n > strings.Count(in, "\n") {
			t.Fatalf("%d events from %d lines", n, strings.Count(in, "\n"))
		}
	})
}

func TestStreamClientAgainstMock(t *testing.T) {
	m, url := startMock(t, MockOptions{Latency: 30 * time.Millisecond, ChunkInterval: 15 * time.Millisecond, Chunks: 4})
	c := NewStreamClient(8)
	defer c.CloseIdle()
	body := []byte(chatBody(`"stream":true,"stream_options":{"include_usage":true}`))
	st, err := c.Do(context.Background(), url+"/v1/chat/completions", http.Header{"Authorization": {"Bearer k"}}, body)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done || !st.Usage || st.Chunks != 7 || string(st.Content) != DefaultMockContent || !strings.HasPrefix(st.RequestID, "mock-") {
		t.Errorf("stats = %+v", st)
	}
	if st.FirstChunk < 30*time.Millisecond || st.MaxGap < 10*time.Millisecond {
		t.Errorf("first chunk %v max gap %v; want ≥ 30ms and ≈ 15ms", st.FirstChunk, st.MaxGap)
	}
	if c.FirstChunk.Count() != 1 || c.Gaps.Count() != 6 || c.Total.Count() != 1 {
		t.Errorf("histogram counts = %d/%d/%d; want 1/6/1", c.FirstChunk.Count(), c.Gaps.Count(), c.Total.Count())
	}

	m.SetFault("*", Fault{DisconnectAfter: 2})
	st, err = c.Do(context.Background(), url+"/v1/chat/completions", nil, body)
	if !errors.Is(err, ErrBrokenStream) || st.Chunks != 2 {
		t.Errorf("cut stream: chunks %d err %v; want 2 and ErrBrokenStream", st.Chunks, err)
	}
	m.SetFault("*", Fault{Status: 502})
	st, err = c.Do(context.Background(), url+"/v1/chat/completions", nil, body)
	if err == nil || errors.Is(err, ErrBrokenStream) || st.Status != 502 {
		t.Errorf("502: status %d err %v; want a status error, not a broken stream", st.Status, err)
	}
}

func TestStreamClientBrokenEvents(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"error event", "data: {\"choices\":[]}\n\ndata: {\"error\":{\"message\":\"upstream died\"}}\n\n"},
		{"not json", "data: {\"choices\":[]}\n\ndata: {oops\n\ndata: [DONE]\n\n"},
		{"no done", "data: {\"choices\":[]}\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := NewStreamClient(1)
			defer c.CloseIdle()
			if _, err := c.Do(context.Background(), srv.URL, nil, []byte(`{}`)); !errors.Is(err, ErrBrokenStream) {
				t.Errorf("Do = %v; want ErrBrokenStream", err)
			}
		})
	}
}

// The building blocks together: an open loop of streams against the mock.
func TestOpenLoopOfStreams(t *testing.T) {
	_, url := startMock(t, MockOptions{ChunkInterval: 5 * time.Millisecond, Chunks: 4})
	c := NewStreamClient(64)
	defer c.CloseIdle()
	body := []byte(chatBody(`"stream":true`))
	res := OpenLoop{Rate: 200, MaxRequests: 60, MaxInFlight: 64}.Run(context.Background(), func(ctx context.Context, seq int) error {
		_, err := c.Do(ctx, url+"/v1/chat/completions", nil, body)
		return err
	})
	if res.OK != 60 || res.Errors != 0 {
		t.Fatalf("result = %+v", res)
	}
	if c.FirstChunk.Count() != 60 || c.Gaps.Count() != 60*5 {
		t.Errorf("first chunk %d gaps %d; want 60 and 300", c.FirstChunk.Count(), c.Gaps.Count())
	}
	if g := c.Gaps.Max(); g < 4*time.Millisecond {
		t.Errorf("max gap = %v; want the 5ms pacing to show", g)
	}
}
