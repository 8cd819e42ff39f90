package schema

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// typicalChatBody is a ~1 KB chat request: a system prompt, a short
// conversation, sampling options and a user id.
func typicalChatBody() []byte {
	body := map[string]any{
		"model": "support-bot",
		"messages": []any{
			map[string]any{"role": "system", "content": "You are a refund assistant for an online store. Answer in JSON with the fields answer and confidence. Be concise and polite; never promise refunds the policy does not allow."},
			map[string]any{"role": "user", "content": "Hi, I ordered a pair of shoes last week (order 1234-5678) and they arrived in the wrong size. Can I get a refund or an exchange?"},
			map[string]any{"role": "assistant", "content": `{"answer":"Yes. Orders can be returned within 30 days. Would you like a refund or an exchange?","confidence":0.92}`},
			map[string]any{"role": "user", "content": "A refund please, to the original card. How long will it take to arrive on my statement?"},
		},
		"temperature":       0.2,
		"max_tokens":        300,
		"user":              "user-8d3f2a",
		"stream":            false,
		"top_p":             1,
		"presence_penalty":  0,
		"frequency_penalty": 0,
		"metadata":          map[string]any{"app": "checkout", "session": "s-19f0c2"},
	}
	b, _ := json.Marshal(body)
	return b
}

var (
	sinkReq     Request
	sinkBytes   []byte
	sinkVerdict Verdict
)

func BenchmarkParseChatRequest(b *testing.B) {
	body := typicalChatBody()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r, err := ParseChatRequest(body)
		if err != nil {
			b.Fatal(err)
		}
		sinkReq = r
	}
}

func BenchmarkRewriteRequest(b *testing.B) {
	body := typicalChatBody()
	dst := make([]byte, 0, 2*len(body))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		out, err := RewriteRequest(dst[:0], body, "gpt-4o-mini", "You are a refund assistant.", true)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = out
	}
}

// typicalStream is a 200-chunk chat completion stream as OpenAI sends it,
// with the usage chunk and [DONE].
func typicalStream(chunks int) []byte {
	var sb strings.Builder
	sb.WriteString(`data: {"id":"chatcmpl-AbC123","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n")
	words := []string{" the", " refund", " \"will\"", " arrive", " in", " 5", "-7", " business", " days", ".\\n"}
	for i := range chunks - 2 {
		fmt.Fprintf(&sb, `data: {"id":"chatcmpl-AbC123","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":"%s"},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n", words[i%len(words)])
	}
	sb.WriteString(`data: {"id":"chatcmpl-AbC123","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}` + "\n\n")
	sb.WriteString(`data: {"id":"chatcmpl-AbC123","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[],"usage":{"prompt_tokens":180,"completion_tokens":198,"total_tokens":378}}` + "\n\n")
	sb.WriteString("data: [DONE]\n\n")
	return []byte(sb.String())
}

// BenchmarkSSEAccumulate feeds a 200-chunk stream in 4 KiB reads through
// SSEParser and StreamAccumulator, as the proxy's relay does.
func BenchmarkSSEAccumulate(b *testing.B) {
	stream := typicalStream(200)
	var p SSEParser
	var a StreamAccumulator
	fn := func(e Event) error {
		if !e.Done {
			a.Add(e.Data)
		}
		return nil
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		p.Reset()
		a.Reset()
		for s := stream; len(s) > 0; {
			n := min(4096, len(s))
			if err := p.Feed(s[:n], fn); err != nil {
				b.Fatal(err)
			}
			s = s[n:]
		}
		if err := p.Flush(fn); err != nil {
			b.Fatal(err)
		}
	}
	if _, ok := a.Usage(); !ok || a.FinishReason() != "stop" {
		b.Fatalf("stream not accumulated: %q", a.FinishReason())
	}
}

func typicalReply() []byte {
	return reply{content: str(`{"answer":"Your refund of $89.90 has been issued to the original card. It usually appears on your statement within 5-7 business days.","confidence":0.93}`)}.body()
}

// BenchmarkCheckMessage judges a typical non-streaming reply against a
// route schema.
func BenchmarkCheckMessage(b *testing.B) {
	req, err := ParseChatRequest(typicalChatBody())
	if err != nil {
		b.Fatal(err)
	}
	ct, err := NewContracts(16).Prepare(mustCompile(b, routeSchema), &req)
	if err != nil {
		b.Fatal(err)
	}
	body := typicalReply()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		sinkVerdict = ct.CheckMessage(body)
	}
	if sinkVerdict.Result != "pass" {
		b.Fatalf("verdict %q", sinkVerdict)
	}
}

// BenchmarkCheckMessageNoContract is the cost for a route without a
// contract: nothing.
func BenchmarkCheckMessageNoContract(b *testing.B) {
	body := typicalReply()
	var ct Contract
	b.ReportAllocs()
	for b.Loop() {
		sinkVerdict = ct.CheckMessage(body)
	}
}

// BenchmarkCheckStreamTools judges a streamed reply with one tool call
// against the tool's parameters.
func BenchmarkCheckStreamTools(b *testing.B) {
	req, err := ParseChatRequest(chatBody(`"tools":[` + weatherTool + `]`))
	if err != nil {
		b.Fatal(err)
	}
	ct, err := NewContracts(16).Prepare(nil, &req)
	if err != nil {
		b.Fatal(err)
	}
	a := accumulate(b, reply{calls: []call{{"get_weather", `{"city":"Paris","confidence":0.8}`}}, finish: "tool_calls"}.stream())
	b.ReportAllocs()
	for b.Loop() {
		sinkVerdict = ct.CheckStream(a)
	}
	if sinkVerdict.Result != "pass" {
		b.Fatalf("verdict %q", sinkVerdict)
	}
}

// BenchmarkPrepareCached is the per-request cost of a request that brings
// its own schema and tools once they are cached: hashing and a lookup.
func BenchmarkPrepareCached(b *testing.B) {
	req, err := ParseChatRequest(chatBody(`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + routeSchema + `}},"tools":[` + weatherTool + `,` + timeTool + `]`))
	if err != nil {
		b.Fatal(err)
	}
	cs := NewContracts(16)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cs.Prepare(nil, &req); err != nil {
			b.Fatal(err)
		}
	}
	if st := cs.Stats(); st.Compiles != 2 {
		b.Fatalf("compiles = %d; want 2", st.Compiles)
	}
}
