package loadtest

import (
	"net"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// benchmarkMock measures the mock serving body over an in-memory listener,
// the cost it adds to every end-to-end benchmark.
func benchmarkMock(b *testing.B, body string) {
	m := NewMock(MockOptions{})
	ln := fasthttputil.NewInmemoryListener()
	go m.Serve(ln) //nolint:errcheck // ends with Close
	b.Cleanup(func() { m.Close() })
	c := &fasthttp.HostClient{Addr: "mock", MaxConns: 256, Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI("http://mock/v1/chat/completions")
			req.Header.SetMethod("POST")
			req.SetBodyString(body)
			if err := c.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
				b.Errorf("do: %v %d", err, resp.StatusCode())
				return
			}
		}
	})
}

func BenchmarkMock(b *testing.B) {
	for _, bc := range []struct{ name, extra string }{
		{"plain", ""},
		{"json", `"response_format":{"type":"json_object"}`},
		{"tools", weatherTools},
		{"stream", `"stream":true,"stream_options":{"include_usage":true}`},
	} {
		b.Run(bc.name, func(b *testing.B) { benchmarkMock(b, chatBody(bc.extra)) })
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(1)
		for pb.Next() {
			d = d*7 + 12345
			h.Record(d % time.Second)
		}
	})
}

func BenchmarkHistogramQuantile(b *testing.B) {
	h := NewHistogram()
	for i := range 100000 {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	b.ReportAllocs()
	var sink time.Duration
	for b.Loop() {
		sink += h.Quantile(0.99)
	}
	_ = sink
}

func BenchmarkAppendInstance(b *testing.B) {
	s := gjson.Get(weatherToolsJSON, "tools.0.function.parameters")
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = appendInstance(buf[:0], s)
	}
}

const weatherToolsJSON = "{" + weatherTools + "}"
