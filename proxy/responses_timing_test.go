package proxy

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/loadtest"
)

// BenchmarkProxyResponses measures the whole non-streaming path for
// POST /v1/responses against chat completions through the same gateway and
// mock in the same run (issue 19: within 10%): the same conversation
// (system prompt / instructions, one user turn, JSON output, temperature)
// in each API's shape, through Cairn (via=cairn) and to the mock directly
// (via=direct: the client's and the mock's own cost, which differ between
// the APIs because a Responses object is larger). Compare the via=cairn
// medians, and the gateway's share (cairn minus direct):
//
//	go test ./proxy -run '^$' -bench ProxyResponses -benchtime 2s -count 6 | tee resp.txt
func BenchmarkProxyResponses(b *testing.B) {
	m := loadtest.NewMock(loadtest.MockOptions{})
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	tg := startGateway(b, fmt.Sprintf(benchConfig, addr), map[string]string{"BENCH_KEY": "bench-key"})
	chatBody := []byte(`{"model":"support-bot","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the refund policy for order 12345 in one sentence."}],"response_format":{"type":"json_object"},"temperature":0.2}`)
	respBody := []byte(`{"model":"support-bot","instructions":"You are a helpful assistant.","input":[{"role":"user","content":"Summarise the refund policy for order 12345 in one sentence."}],"text":{"format":{"type":"json_object"}},"temperature":0.2}`)
	for _, api := range []struct {
		name, path string
		body       []byte
	}{
		{"api=chat", "/v1/chat/completions", chatBody},
		{"api=responses", "/v1/responses", respBody},
	} {
		for _, via := range []struct{ name, base string }{{"via=cairn", tg.api}, {"via=direct", "http://" + addr}} {
			b.Run(api.name+"/"+via.name, func(b *testing.B) {
				c := &fasthttp.Client{MaxConnsPerHost: 512, ReadTimeout: 5 * time.Second}
				b.ReportAllocs()
				b.SetParallelism(8)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) { sendChats(b, c, via.base+api.path, "Bearer bench-key", api.body, pb.Next, nil) })
			})
		}
	}
}

// responsesStream is an upstream Responses stream of n text deltas as
// OpenAI writes it (event lines, typed data, sequence numbers).
func responsesStream(n int) []byte {
	var b bytes.Buffer
	seq := 0
	ev := func(typ, rest string) {
		fmt.Fprintf(&b, "event: %s\ndata: {\"type\":%q,\"sequence_number\":%d%s}\n\n", typ, typ, seq, rest)
		seq++
	}
	resp := `{"id":"resp_68af","object":"response","created_at":1756000000,"status":"in_progress","model":"gpt-4o-mini","output":[],"usage":null}`
	ev("response.created", `,"response":`+resp)
	ev("response.in_progress", `,"response":`+resp)
	ev("response.output_item.added", `,"output_index":0,"item":{"id":"msg_68af","type":"message","status":"in_progress","content":[],"role":"assistant"}`)
	for i := range n {
		ev("response.output_text.delta", `,"item_id":"msg_68af","output_index":0,"content_index":0,"delta":"word`+strconv.Itoa(i%10)+` ","logprobs":[],"obfuscation":"Xy1"`)
	}
	ev("response.completed", `,"response":{"id":"resp_68af","object":"response","status":"completed","model":"gpt-4o-mini","output":[],"usage":{"input_tokens":12,"output_tokens":`+strconv.Itoa(n)+`,"total_tokens":`+strconv.Itoa(n+12)+`}}`)
	return b.Bytes()
}

// chatStream is the same answer as chat.completion.chunk events.
func chatStream(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1756000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word%d \"},\"finish_reason\":null}]}\n\n", i%10)
	}
	b.WriteString("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1756000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":1,\"total_tokens\":13}}\n\ndata: [DONE]\n\n")
	return b.Bytes()
}

// relayOnce runs the relay's per-event work (framing, secret redaction,
// accumulation, re-framing for the client) over a whole upstream stream,
// as attemptStream and relay do, and returns the events framed.
func relayOnce(g *Gateway, ep endpoint, stream []byte, bufp *[]byte, out []byte) int {
	x := &exchange{g: g, ep: ep}
	s := &streamRelay{x: x, r: bytes.NewReader(stream), bufp: bufp, out: out[:0]}
	if ep == epResponses {
		s.acc.ForResponses()
	}
	for {
		err := s.pump()
		s.out = s.out[:0]
		if err != nil {
			break
		}
	}
	return s.events
}

func relayGateway() *Gateway {
	return &Gateway{secrets: &capture.Redactor{}, now: time.Now}
}

// BenchmarkRelayEvents reports allocs per streamed event through the relay
// for a Responses stream and for the same answer as a chat stream:
//
//	go test ./proxy -run '^$' -bench RelayEvents -benchmem -count 6
func BenchmarkRelayEvents(b *testing.B) {
	for _, bc := range []struct {
		name   string
		ep     endpoint
		stream []byte
	}{
		{"api=chat", epChat, chatStream(256)},
		{"api=responses", epResponses, responsesStream(256)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := relayGateway()
			buf := make([]byte, streamBufSize)
			out := make([]byte, 0, 64<<10)
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.stream)))
			events := 0
			for b.Loop() {
				events += relayOnce(g, bc.ep, bc.stream, &buf, out)
			}
			b.ReportMetric(float64(events)/float64(b.N), "events/op")
		})
	}
}
