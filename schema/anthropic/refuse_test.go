package anthropic

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cairnhq/cairn/schema"
)

// TestRequestRefusesUntranslatable: what the Messages API cannot express
// is a ParamError naming the parameter, never dropped.
func TestRequestRefusesUntranslatable(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, tt := range []struct{ body, param string }{
		{`{"model":"m",` + msgs + `,"n":2}`, "n"},
		{`{"model":"m",` + msgs + `,"logprobs":true}`, "logprobs"},
		{`{"model":"m",` + msgs + `,"top_logprobs":3}`, "top_logprobs"},
		{`{"model":"m",` + msgs + `,"presence_penalty":0.5}`, "presence_penalty"},
		{`{"model":"m",` + msgs + `,"logit_bias":{"1":2}}`, "logit_bias"},
		{`{"model":"m",` + msgs + `,"seed":7}`, "seed"},
		{`{"model":"m",` + msgs + `,"audio":{"voice":"x"}}`, "audio"},
		{`{"model":"m",` + msgs + `,"response_format":{"type":"json_object"}}`, "response_format"},
		{`{"model":"m",` + msgs + `,"reasoning_effort":"high"}`, "reasoning_effort"},
		{`{"model":"m",` + msgs + `,"tool_choice":"required"}`, "tool_choice"},
		{`{"model":"m",` + msgs + `,"max_tokens":0}`, "max_tokens"},
		{`{"model":"m","messages":[{"role":"user","name":"bob","content":"hi"}]}`, "messages[0].name"},
		{`{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}`, "messages[0].name"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages[0].content[0].type"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}`, "messages[0].content[0].image_url.url"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png","detail":"high"}}]}]}`, "messages[0].content[0].image_url.detail"},
		{`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{`{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{`{"model":"m","messages":[{"role":"user","content":""}]}`, "messages[0].content"},
		{`{"model":"m",` + msgs + `,"tools":[{"type":"custom","custom":{"name":"x"}}]}`, "tools[0].type"},
		{`{"model":"m",` + msgs + `,"stop":[1]}`, "stop"},
	} {
		out, err := AppendRequest([]byte("keep"), []byte(tt.body), RequestOptions{MaxTokens: 10})
		if err == nil || err.Param != tt.param {
			t.Errorf("AppendRequest(%s) = %v; want a ParamError for %q", tt.body, err, tt.param)
		}
		if !bytes.Equal(out, []byte("keep")) {
			t.Errorf("AppendRequest(%s) left %q in dst; want it untouched", tt.body, out)
		}
	}
}

// TestRequestAcceptsDefaults: parameters at their default value ask for
// nothing the Messages API lacks.
func TestRequestAcceptsDefaults(t *testing.T) {
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"n":1,"logprobs":false,"presence_penalty":0,"frequency_penalty":0,"store":false,"service_tier":"auto","stream_options":{"include_usage":true},"response_format":{"type":"text"},"seed":null}`
	if _, err := AppendRequest(nil, []byte(body), RequestOptions{MaxTokens: 10}); err != nil {
		t.Errorf("AppendRequest(%s) = %v; want it translated", body, err)
	}
}

// TestStreamErrorBeforeContent: an error event before any chunk is an
// *EventError (the gateway may still fail over) and nothing is emitted;
// after a chunk it is an OpenAI error event.
func TestStreamErrorBeforeContent(t *testing.T) {
	start := []byte(`{"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3}}}`)
	overloaded := []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	var s Stream
	s.Reset(1, true)
	n := 0
	emit := func(schema.Event) error { n++; return nil }
	if err := s.Event(start, emit); err != nil {
		t.Fatal(err)
	}
	err := s.Event(overloaded, emit)
	var ee *EventError
	if !errors.As(err, &ee) || ee.Type != "overloaded_error" || n != 0 {
		t.Errorf("error before content = %v after %d chunks; want an *EventError and no chunk", err, n)
	}
	s.Reset(1, true)
	_ = s.Event(start, emit)
	_ = s.Event([]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`), emit)
	if err := s.Event(overloaded, emit); err != nil || n != 4 {
		t.Errorf("error after content = %v, %d events; want role, content, error, [DONE]", err, n)
	}
}
