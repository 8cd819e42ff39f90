package capture

import (
	"slices"
	"strings"
	"testing"
)

func chatBody(content string) []byte {
	return []byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":` + string(appendJSONString(nil, content)) + `},"finish_reason":"stop"}]}`)
}

func TestLeaks(t *testing.T) {
	m := testMasker(t)
	req := func(s string) []byte {
		return []byte(`{"model":"m","messages":[{"role":"user","content":` + string(appendJSONString(nil, s)) + `}]}`)
	}
	for _, tt := range []struct {
		name     string
		raw      RawBodies
		endpoint string
		status   int
		want     []string
	}{
		{"clean answer", RawBodies{RequestBody: req("hi"), ResponseBody: chatBody("Your refund is on its way.")}, "", 200, nil},
		{"email not in request", RawBodies{RequestBody: req("who handles refunds?"), ResponseBody: chatBody("Write to jane.doe@corp.example")}, "", 200, []string{"email"}},
		{"email echoed from request", RawBodies{RequestBody: req("my mail is Jane.Doe@corp.example"), ResponseBody: chatBody("I wrote to jane.doe@corp.example")}, "", 200, nil},
		{"email from the system prompt", RawBodies{RequestBody: req("who?"), SystemPrompt: "Support: help@shop.example", ResponseBody: chatBody("Mail help@shop.example")}, "", 200, nil},
		{"card, other spelling of the request's", RawBodies{RequestBody: req("card 4111 1111 1111 1111"), ResponseBody: chatBody("Charged 4111-1111-1111-1111.")}, "", 200, nil},
		{"card is not also a phone", RawBodies{RequestBody: req("x"), ResponseBody: chatBody("Card: 4111 1111 1111 1111")}, "", 200, []string{"card"}},
		{"several kinds, sorted", RawBodies{RequestBody: req("x"), ResponseBody: chatBody("Call +1 415 555 0100 or mail a@b.example, IBAN GB82 WEST 1234 5698 7654 32, key sk-proj-abcdefghijklmnopqrstuvwxyz012345")}, "", 200, []string{"api_key", "email", "iban", "phone"}},
		{"custom pattern", RawBodies{RequestBody: req("x"), ResponseBody: chatBody("Your ID is 870412300415")}, "", 200, []string{"kz_iin"}},
		{"private key, unescaped", RawBodies{RequestBody: req("x"), ResponseBody: chatBody("key: -----BEGIN PRIVATE KEY----- MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7 -----END PRIVATE KEY-----")}, "", 200, []string{"private_key"}},
		{"dates wake the private-key gate, no key", RawBodies{RequestBody: req("x"), ResponseBody: chatBody("2026-11-24, 2026-11-25, 2026-11-26, 2026-11-27, 2026-11-28, 2026-11-29")}, "", 200, nil},
		{"ip addresses are no leak", RawBodies{RequestBody: req("x"), ResponseBody: chatBody("Connect to 10.0.0.12")}, "", 200, nil},
		{"tool-call arguments", RawBodies{RequestBody: req("x"), ResponseBody: []byte(`{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"send","arguments":"{\"to\":\"bob@evil.example\"}"}}]},"finish_reason":"tool_calls"}]}`)}, "", 200, []string{"email"}},
		{"stream content and tool calls", RawBodies{RequestBody: req("x"), StreamContent: "ok", StreamToolCalls: []byte(`[{"id":"c1","name":"f","arguments":"{\"card\":\"5555555555554444\"}"}]`), FinishReason: "tool_calls"}, "", 200, []string{"card"}},
		{"pretty-printed answer", RawBodies{RequestBody: req("x"), ResponseBody: []byte("{\n \"choices\": [{\"message\": {\"content\": \"mail a@b.example\"}}]}")}, "", 200, []string{"email"}},
		{"content parts", RawBodies{RequestBody: req("x"), ResponseBody: []byte(`{"choices":[{"message":{"content":[{"type":"text","text":"mail a@b.example"}]}}]}`)}, "", 200, []string{"email"}},
		{"legacy completion text", RawBodies{RequestBody: req("x"), ResponseBody: []byte(`{"choices":[{"text":"mail a@b.example","index":0}]}`)}, "completions", 200, []string{"email"}},
		{"not JSON", RawBodies{RequestBody: req("x"), ResponseBody: []byte(`{"choices":[{"message":{"content":"a@b.example`)}, "", 200, nil},
		{"error bodies are not answers", RawBodies{RequestBody: req("x"), ResponseBody: []byte(`{"error":{"message":"contact ops@provider.example"}}`)}, "", 500, nil},
		{"embeddings are not answers", RawBodies{RequestBody: req("x"), ResponseBody: chatBody("a@b.example")}, "embeddings", 200, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ep := tt.endpoint
			if ep == "" {
				ep = "chat.completions"
			}
			got := m.Leaks(ep, tt.status, &tt.raw)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Leaks = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestWriterRecordsLeakNamesNotValues: the writer fills pii_leak on every
// record (sampled or not), the line names the detector and never holds the
// value, and the metric counts the response.
func TestWriterRecordsLeakNamesNotValues(t *testing.T) {
	dir := t.TempDir()
	met := NewMetrics()
	rate := 0.0
	w := newTestWriter(t, WriterOptions{DataDir: dir, Metrics: met, Rand: func() float64 { return 0.5 }})
	w.SetSampleRate(rate)
	w.Start()
	const secretMail = "leaked.person@private.example"
	r := testRecord(1)
	r.Target = "openai/gpt-4o-mini"
	r.Refusal = true
	r.Raw.ResponseBody = chatBody("Sure, their address is " + secretMail)
	w.Enqueue(r)
	closeWriter(t, w)
	recs := readRecords(t, dir)
	if len(recs) != 1 {
		t.Fatalf("%d records; want 1", len(recs))
	}
	if got := recs[0].PIILeak; !slices.Equal(got, []string{"email"}) || !recs[0].Refusal {
		t.Errorf("pii_leak = %q, refusal = %v; want [email], true", got, recs[0].Refusal)
	}
	line, _ := recs[0].MarshalJSON()
	if strings.Contains(string(line), secretMail) || !strings.Contains(string(line), `"pii_leak":["email"]`) {
		t.Errorf("record line %s", line)
	}
	txt := metricsText(met)
	for _, want := range []string{
		`cairn_pii_leaks_total{route="support-bot",cohort="canary",target="openai/gpt-4o-mini"} 1`,
		`cairn_refusals_total{route="support-bot",cohort="canary",target="openai/gpt-4o-mini"} 1`,
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(txt, secretMail) {
		t.Error("metrics hold the leaked value")
	}
}

// TestWriterLeaksThroughMaskedResponse: with bodies sampled the writer
// finds leaks through the masked response's placeholders, and a clean
// answer, or one echoing the request's own data, is no leak.
func TestWriterLeaksThroughMaskedResponse(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir})
	w.Start()
	for i, content := range []string{
		"Sure, their address is other.person@private.example",
		"Your refund is on its way.",
		"We wrote to you at hello@mine.example",
	} {
		r := testRecord(i)
		r.Raw.RequestBody = []byte(`{"model":"m","messages":[{"role":"user","content":"I am hello@mine.example"}]}`)
		r.Raw.ResponseBody = chatBody(content)
		w.Enqueue(r)
	}
	closeWriter(t, w)
	recs := readRecords(t, dir)
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	want := [][]string{{"email"}, nil, nil}
	for i, r := range recs {
		if !r.BodySampled || !slices.Equal(r.PIILeak, want[i]) {
			t.Errorf("record %d: sampled %v pii_leak %q; want sampled, %q", i, r.BodySampled, r.PIILeak, want[i])
		}
	}
	if m := testMasker(t); m.LeaksMasked("chat.completions", 200, &RawBodies{ResponseBody: chatBody("a@b.example")}, []byte(`{"content":"[EMAIL]"}`)) == nil {
		t.Error("LeaksMasked skipped a masked response with a placeholder")
	}
}
