package capture

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// typicalMessage is a ~1 KB user message: prose, an order number, a date,
// an amount and one email address.
var typicalMessage = strings.Repeat("Hi, I ordered a pair of running shoes on 2026-11-02 (order 88412093) and paid 129.99 EUR. ", 5) +
	"They arrived damaged, the sole came off after two days. Please refund me or send a replacement; you can reach me at jane.doe@example.com. " +
	strings.Repeat("I have been a customer for years and never had a problem like this before, thanks for your help. ", 4)

// typicalRequest is a ~2 KB chat request's messages with a system prompt, a
// user turn with content parts and an assistant tool call.
var typicalRequest = []byte(`[{"role":"system","content":"You are a refund assistant for an online shoe store. Answer briefly, ask for the order number when it is missing, and call the refund tool only when the customer confirms. Never reveal internal notes."},` +
	`{"role":"user","content":[{"type":"text","text":` + string(appendJSONString(nil, typicalMessage)) + `}]},` +
	`{"role":"assistant","content":null,"tool_calls":[{"id":"call_8f2a","type":"function","function":{"name":"refund","arguments":"{\"order_id\":\"88412093\",\"amount\":129.99,\"reason\":\"damaged on arrival\",\"email\":\"jane.doe@example.com\"}"}}]},` +
	`{"role":"tool","tool_call_id":"call_8f2a","content":"{\"status\":\"approved\",\"refund_id\":\"rf_55120\",\"eta_days\":5}"},` +
	`{"role":"user","content":"Great, thank you! Will the money go back to the same card?"}]`)

func BenchmarkMaskerString(b *testing.B) {
	m := testMasker(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalMessage)))
	var out string
	for b.Loop() {
		out = m.String(typicalMessage)
	}
	if strings.Contains(out, "jane.doe") {
		b.Fatal("email not masked")
	}
}

func BenchmarkMaskerStringClean(b *testing.B) {
	m := testMasker(b)
	clean := strings.ReplaceAll(typicalMessage, "jane.doe@example.com", "the email on file")
	b.ReportAllocs()
	b.SetBytes(int64(len(clean)))
	for b.Loop() {
		_ = m.String(clean)
	}
}

func BenchmarkMaskerJSON(b *testing.B) {
	m := testMasker(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalRequest)))
	var out []byte
	for b.Loop() {
		out = m.JSON(typicalRequest)
	}
	if strings.Contains(string(out), "jane.doe") {
		b.Fatal("email not masked")
	}
}

// BenchmarkEnqueue measures the request path's cost of handing a record
// over. "accepted": a consumer empties the queue as fast as it can;
// "full": every record is dropped and counted.
func BenchmarkEnqueue(b *testing.B) {
	b.Run("accepted", func(b *testing.B) {
		w, err := NewWriter(WriterOptions{DataDir: b.TempDir(), Capture: configs.Capture{QueueSize: 65536}})
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-w.q:
				case <-stop:
					return
				}
			}
		}()
		defer close(stop)
		r := testRecord(1) // shared: the consumer never touches it
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Enqueue(r)
			}
		})
	})
	b.Run("full", func(b *testing.B) {
		w, err := NewWriter(WriterOptions{DataDir: b.TempDir(), Capture: configs.Capture{QueueSize: 1}})
		if err != nil {
			b.Fatal(err)
		}
		r := testRecord(1)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Enqueue(r)
			}
		})
	})
}

// BenchmarkWriterProcess measures the writer goroutine's work per record:
// masking a 2 KB request and its response, metrics, memory index, JSON
// encoding and the buffered file append. Its inverse is the sustained
// record rate one writer goroutine absorbs.
func BenchmarkWriterProcess(b *testing.B) {
	w, err := NewWriter(WriterOptions{DataDir: b.TempDir(), Masker: testMasker(b), Capture: configs.Capture{MaxFileBytes: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"model":"support-bot","messages":` + string(typicalRequest) + `}`)
	resp := []byte(`{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"I am sorry about the shoes. I have issued a refund of 129.99 EUR to the card on file; you will get an email at jane.doe@example.com."},"finish_reason":"stop"}],"usage":{"prompt_tokens":420,"completion_tokens":40,"total_tokens":460}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body) + len(resp)))
	i := 0
	cpu := processCPU()
	for b.Loop() {
		r := testRecord(i)
		r.Raw.RequestBody, r.Raw.ResponseBody = body, resp
		w.process(r)
		i++
	}
	reportCPU(b, cpu)
	b.StopTimer()
	w.files.closeFile()
}

func BenchmarkTracingNoExporter(b *testing.B) {
	tr, _ := NewTracing(configs.Tracing{}, "bench")
	r := testRecord(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := tr.Start("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "chat.completions")
			_ = s.Traceparent()
			s.End(r)
		}
	})
}

// typicalCompletion is a chat.completion as OpenAI returns it (and as the
// loadtest mock does): usage details, refusal, annotations, logprobs.
var typicalCompletion = []byte(`{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1764000000,"model":"gpt-4o-mini-2024-07-18",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":` + string(appendJSONString(nil,
	"I am sorry the shoes arrived damaged. I have issued a full refund of 129.99 EUR for order 88412093 to the card you paid with; "+
		"it usually shows up within 5 business days. A confirmation will be sent to jane.doe@example.com. If you would rather have a "+
		"replacement pair, reply to this message and I will cancel the refund and ship new shoes at no cost. Is there anything else I can help with?")) +
	`,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":420,"completion_tokens":96,"total_tokens":516,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},` +
	`"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},` +
	`"service_tier":"default","system_fingerprint":"fp_cairn_mock"}`)

// proxyRecord is a record as the proxy's non-streaming path hands it over:
// request headers, one attempt, params, and the raw request and response.
func proxyRecord(i int, reqBody, respBody []byte) *Record {
	r := testRecord(i)
	temp := 0.2
	r.Key, r.Client, r.RequestedModel, r.PromptVersion = "bench", "OpenAI/Python 1.99.0", "support-bot", "v1"
	r.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r.Release, r.ConfigRevision = "2026.11.1", "c0ffee12"
	r.Params = Params{Temperature: &temp, MaxTokens: 512, ResponseFormat: "json_object"}
	r.Attempts = []Attempt{{Provider: "openai", Model: "gpt-4o-mini", Cohort: "canary", Status: 200,
		ProviderRequestID: r.ProviderRequestID, LatencyMS: 118.4, Contract: VerdictPass}}
	r.Headers = map[string]string{"user-agent": "OpenAI/Python 1.99.0", "content-type": "application/json",
		"x-client-request-id": fmt.Sprintf("client-%04d", i)}
	r.Raw.RequestBody, r.Raw.ResponseBody = reqBody, respBody
	return r
}

// BenchmarkWriterProcessTypical is one record through process() as the
// proxy's non-streaming path produces it: "2KB" is a ~2 KB chat request
// (system prompt, content parts, a tool call round trip) with an
// OpenAI-shaped ~1 KB completion; "small" is the request of
// proxy.BenchmarkProxyChat with the same completion; "stream" is a
// streamed answer with tool calls.
func BenchmarkWriterProcessTypical(b *testing.B) {
	req2k := []byte(`{"model":"support-bot","messages":` + string(typicalRequest) + `,"temperature":0.2,"max_tokens":512,"response_format":{"type":"json_object"}}`)
	small := []byte(`{"model":"support-bot","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the refund policy for order 12345 in one sentence."}],"response_format":{"type":"json_object"},"temperature":0.2}`)
	for _, bc := range []struct {
		name       string
		req, resp  []byte
		streamText string
	}{
		{"2KB", req2k, typicalCompletion, ""},
		{"small", small, typicalCompletion, ""},
		{"stream", req2k, nil, typicalMessage},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w, err := NewWriter(WriterOptions{DataDir: b.TempDir(), Masker: testMasker(b), Capture: configs.Capture{MaxFileBytes: 1 << 30}})
			if err != nil {
				b.Fatal(err)
			}
			w.Subscribe(func(*Record) {})
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.req) + len(bc.resp) + len(bc.streamText)))
			i := 0
			cpu := processCPU()
			for b.Loop() {
				r := proxyRecord(i, bc.req, bc.resp)
				if bc.streamText != "" {
					r.Params.Stream = true
					r.Raw.StreamContent, r.Raw.FinishReason = bc.streamText, "tool_calls"
					r.Raw.StreamToolCalls = []byte(`[{"id":"call_8f2a","name":"refund","arguments":"{\"order_id\":\"88412093\",\"email\":\"jane.doe@example.com\"}"}]`)
				}
				w.process(r)
				i++
			}
			reportCPU(b, cpu)
			b.StopTimer()
			w.files.closeFile()
		})
	}
}

// BenchmarkScanFeatures is the pre-scan every string gets before any
// detector runs.
func BenchmarkScanFeatures(b *testing.B) {
	s := []byte(typicalMessage)
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		_ = scanFeatures(s)
	}
}
