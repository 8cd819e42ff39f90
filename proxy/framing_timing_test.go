package proxy

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// typicalSDKHead is the header block the OpenAI Python SDK sends.
const typicalSDKHead = "POST /v1/chat/completions HTTP/1.1\r\nHost: api.example.com\r\nAccept-Encoding: gzip, deflate\r\n" +
	"Connection: keep-alive\r\nAccept: application/json\r\nContent-Type: application/json\r\nUser-Agent: OpenAI/Python 1.54.0\r\n" +
	"X-Stainless-Lang: python\r\nX-Stainless-Package-Version: 1.54.0\r\nX-Stainless-OS: Linux\r\nX-Stainless-Arch: x64\r\n" +
	"X-Stainless-Runtime: CPython\r\nX-Stainless-Runtime-Version: 3.12.3\r\nAuthorization: Bearer sk-0123456789abcdef0123456789abcdef\r\n" +
	"X-Stainless-Async: false\r\nX-Stainless-Retry-Count: 0\r\nContent-Length: 120\r\n\r\n"

func parsedHeader(tb testing.TB, raw string) *fasthttp.RequestHeader {
	tb.Helper()
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		tb.Fatalf("parse %q: %v", raw, err)
	}
	return &h
}

// BenchmarkFramingError measures the per-request smuggling check on a
// typical SDK header block (it runs on every API request):
//
//	go test ./proxy -run '^$' -bench FramingError -benchtime 2s
func BenchmarkFramingError(b *testing.B) {
	b.ReportAllocs()
	h := parsedHeader(b, typicalSDKHead)
	b.SetBytes(int64(len(h.RawHeaders())))
	for b.Loop() {
		if framingError(h) != "" {
			b.Fatal("typical head refused")
		}
	}
}

func TestFramingError(t *testing.T) {
	tests := []struct {
		name, head string
		refused    bool
	}{
		{"sdk", typicalSDKHead, false},
		{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"GET", "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET zero length", "GET /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"TE identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", true},
		{"GET with body", "GET /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", true},
		{"obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", true},
		{"space in name", "POST / HTTP/1.1\r\nHost: x\r\nX A: a\r\n\r\n", true},
	}
	for _, tt := range tests {
		got := framingError(parsedHeader(t, tt.head))
		if (got != "") != tt.refused {
			t.Errorf("framingError(%s) = %q; want refused %v", tt.name, got, tt.refused)
		}
	}
}
