package capture

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// referenceResponse is the writer's response extraction before it read
// fields straight from the body: unmarshal, re-marshal, mask. The fast one
// must give the same JSON value for every body a provider sends.
func referenceResponse(m *Masker, endpoint string, status int, raw *RawBodies) json.RawMessage {
	type out struct {
		Content      json.RawMessage `json:"content,omitempty"`
		Refusal      json.RawMessage `json:"refusal,omitempty"`
		ToolCalls    json.RawMessage `json:"tool_calls,omitempty"`
		FinishReason string          `json:"finish_reason,omitempty"`
		Choices      int             `json:"choices,omitempty"`
		Error        json.RawMessage `json:"error,omitempty"`
	}
	validOrString := func(b []byte) json.RawMessage {
		if json.Valid(b) {
			return b
		}
		return appendJSONString(nil, string(b))
	}
	marshalMasked := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			return append(json.RawMessage(nil), maskingFailedJSON...)
		}
		return m.JSON(b)
	}
	if raw.StreamContent != "" || len(raw.StreamToolCalls) > 0 || raw.FinishReason != "" {
		o := out{FinishReason: raw.FinishReason}
		if raw.StreamContent != "" {
			o.Content = appendJSONString(nil, raw.StreamContent)
		}
		if len(raw.StreamToolCalls) > 0 {
			o.ToolCalls = validOrString(raw.StreamToolCalls)
		}
		if len(bytes.TrimSpace(raw.ResponseBody)) > 0 {
			o.Error = validOrString(raw.ResponseBody)
		}
		return marshalMasked(o)
	}
	body := raw.ResponseBody
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if status >= 200 && status < 300 {
		var resp struct {
			Choices []struct {
				Message struct {
					Content      json.RawMessage `json:"content"`
					Refusal      json.RawMessage `json:"refusal"`
					ToolCalls    json.RawMessage `json:"tool_calls"`
					FunctionCall json.RawMessage `json:"function_call"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Data []json.RawMessage `json:"data"`
		}
		if json.Unmarshal(body, &resp) == nil {
			switch {
			case len(resp.Choices) > 0:
				c := resp.Choices[0]
				o := out{FinishReason: c.FinishReason, ToolCalls: c.Message.ToolCalls}
				if string(c.Message.Refusal) != "null" {
					o.Refusal = c.Message.Refusal
				}
				if string(o.ToolCalls) == "null" {
					o.ToolCalls = nil
				}
				if len(o.ToolCalls) == 0 && len(c.Message.FunctionCall) > 0 && string(c.Message.FunctionCall) != "null" {
					o.ToolCalls = append(append([]byte("["), c.Message.FunctionCall...), ']')
				}
				if string(c.Message.Content) != "null" {
					o.Content = c.Message.Content
				}
				if len(resp.Choices) > 1 {
					o.Choices = len(resp.Choices)
				}
				return marshalMasked(o)
			case endpoint == "embeddings" || resp.Data != nil:
				b, _ := json.Marshal(struct {
					Embeddings int `json:"embeddings"`
				}{len(resp.Data)})
				return b
			}
		}
	}
	return m.JSON(body)
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// responseBodies are provider bodies of every shape the writer meets.
var responseBodies = []string{
	string(typicalCompletion),
	`{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"refund","arguments":"{\"card\":\"4111111111111111\",\"ip\":\"10.0.0.1\"}"}}]},"finish_reason":"tool_calls"}]}`,
	`{"choices":[{"message":{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{\"email\":\"bob@example.com\"}"}},"finish_reason":"function_call"}]}`,
	`{"choices":[{"message":{"role":"assistant","content":null,"refusal":"I cannot help bob@example.com"},"finish_reason":"stop"}]}`,
	`{"choices":[{"message":{"content":[{"type":"text","text":"call +14155550100"}]},"finish_reason":null}]}`,
	`{"choices":[{"message":{"content":"a"},"finish_reason":"stop"},{"message":{"content":"b"},"finish_reason":"length"},null]}`,
	"{\n  \"choices\": [\n    {\n      \"message\": {\"content\": \"pretty <b>&amp;</b> \\u0040 bob@example.com\"},\n      \"finish_reason\": \"stop\"\n    }\n  ]\n}\n",
	`{"choices":[{"message":{"content":"{\"answer\":\"ok\",\"confidence\":0.9}"},"finish_reason":"stop"}]}`,
	`{"choices":[null]}`, `{"choices":[{}]}`, `{"choices":[{"message":null}]}`, `{"choices":[]}`, `{"choices":null}`,
	`{"choices":[{"message":{"content":"x"},"finish_reason":7}]}`, `{"choices":[{"message":"x"}]}`, `{"choices":{"a":1}}`,
	`{"choices":[1]}`, `{"object":"list","data":[{"embedding":[0.1]},{"embedding":[0.2]}],"usage":{"prompt_tokens":3}}`,
	`{"data":[]}`, `{"data":null}`, `{"data":"x bob@example.com"}`, `{"other":"x bob@example.com"}`, `[1,"bob@example.com"]`,
	`"just a string with 10.0.0.1"`, `null`, `{"error":{"message":"key sk-abcdefghijklmnopqrstuvwxyz0123456789 invalid","type":"invalid_request_error"}}`,
	`not json +14155550100`, `{"choices":[{"message":{"content":"x"}}`,
}

func TestResponseMatchesReference(t *testing.T) {
	m := testMasker(t)
	for _, body := range responseBodies {
		for _, status := range []int{200, 400, 502} {
			for _, endpoint := range []string{"chat.completions", "embeddings"} {
				raw := RawBodies{ResponseBody: []byte(body)}
				got, want := m.response(endpoint, status, &raw), referenceResponse(m, endpoint, status, &raw)
				if !sameJSON(got, want) {
					t.Errorf("response(%s, %d, %s) = %s; reference %s", endpoint, status, body, got, want)
				}
				if len(got) > 0 && (!json.Valid(got) || bytes.ContainsAny(got, "\n\r")) {
					t.Errorf("response(%s) = %q; want valid JSON on one line", body, got)
				}
			}
		}
	}
	streams := []RawBodies{
		{StreamContent: "mail bob@example.com", FinishReason: "stop"},
		{StreamContent: `{"answer": "10.0.0.1"}`, FinishReason: "stop"},
		{StreamContent: "bad \xff utf8 bob@example.com"},
		{StreamToolCalls: []byte(`[{"id":"c1","name":"f","arguments":"{\"ip\":\"10.0.0.1\"}"}]`), FinishReason: "tool_calls"},
		{StreamToolCalls: []byte(`not json 10.0.0.1`)},
		{StreamContent: "partial", ResponseBody: []byte("reset by peer 10.0.0.2")},
		{StreamContent: "partial", ResponseBody: []byte(" {\"error\": {\"message\": \"bob@example.com\"}}\n")},
		{FinishReason: "<stop>"},
	}
	for _, raw := range streams {
		got, want := m.response("chat.completions", 200, &raw), referenceResponse(m, "chat.completions", 200, &raw)
		if !sameJSON(got, want) {
			t.Errorf("response(stream %+v) = %s; reference %s", raw, got, want)
		}
	}
}

func FuzzResponseMatchesReference(f *testing.F) {
	for _, b := range responseBodies {
		f.Add([]byte(b), true)
	}
	m := testMasker(f)
	f.Fuzz(func(t *testing.T, body []byte, ok bool) {
		status := 200
		if !ok {
			status = 500
		}
		raw := RawBodies{ResponseBody: body}
		got, want := m.response("chat.completions", status, &raw), referenceResponse(m, "chat.completions", status, &raw)
		if !sameJSON(got, want) && !pathological(body) {
			t.Fatalf("response(%q) = %s; reference %s", body, got, want)
		}
	})
}

// pathological reports bodies no provider sends, where the reference's
// json.Unmarshal differs from reading fields by exact name (duplicate or
// differently cased keys) or where the reference refused the whole body
// for a field the writer does not read (a data of the wrong type next to
// choices). Both results are fully masked.
func pathological(body []byte) bool {
	lower := strings.ToLower(string(body))
	if strings.Contains(lower, `"choices"`) && strings.Contains(lower, `"data"`) {
		return true
	}
	for _, k := range []string{"choices", "data", "message", "content", "refusal", "tool_calls", "function_call", "finish_reason"} {
		if strings.Count(lower, `"`+k+`"`) > 1 || strings.Count(lower, k) != strings.Count(string(body), k) {
			return true
		}
	}
	return false
}

// TestRecordBodiesOneLine checks that pretty-printed bodies end up compact
// in the record, so each record stays one JSONL line.
func TestRecordBodiesOneLine(t *testing.T) {
	m := testMasker(t)
	r := testRecord(1)
	r.Raw.RequestBody = []byte("{\n  \"model\": \"m\",\n  \"messages\": [\n    {\"role\": \"user\", \"content\": \"hi\\nthere bob@example.com\"}\n  ]\n}\n")
	r.Raw.ResponseBody = []byte("{\n \"choices\": [ {\"message\": {\"content\": \"ok\"}, \"finish_reason\": \"stop\"} ]\n}")
	m.maskRecord(r, true)
	if want := `[{"role":"user","content":"hi\nthere [EMAIL]"}]`; string(r.Request) != want {
		t.Errorf("Request = %s; want %s", r.Request, want)
	}
	if want := `{"content":"ok","finish_reason":"stop"}`; string(r.Response) != want {
		t.Errorf("Response = %s; want %s", r.Response, want)
	}
	line := appendRecord(nil, r)
	if bytes.Count(line, []byte("\n")) != 1 || !json.Valid(line) {
		t.Errorf("record line = %q; want one valid JSON line", line)
	}
}
