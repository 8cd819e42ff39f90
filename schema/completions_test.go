package schema

import (
	"errors"
	"testing"
)

func TestParseCompletionsRequest(t *testing.T) {
	for _, tt := range []struct {
		name, body, param string
		stream, usage     bool
		user              string
		maxTokens         int
	}{
		{name: "string prompt", body: `{"model":"m","prompt":"Say hi","max_tokens":5,"user":"u1"}`, user: "u1", maxTokens: 5},
		{name: "array prompt, streamed with usage", body: `{"model":"m","prompt":["a","b"],"stream":true,"stream_options":{"include_usage":true}}`, stream: true, usage: true},
		{name: "token prompt", body: `{"model":"m","prompt":[[1,2,3]]}`},
		{name: "safety identifier", body: `{"model":"m","prompt":"x","safety_identifier":"s1"}`, user: "s1"},
		{name: "no prompt", body: `{"model":"m"}`, param: "prompt"},
		{name: "null prompt", body: `{"model":"m","prompt":null}`, param: "prompt"},
		{name: "numeric prompt", body: `{"model":"m","prompt":3}`, param: "prompt"},
		{name: "no model", body: `{"prompt":"x"}`, param: "model"},
		{name: "duplicate prompt", body: `{"model":"m","prompt":"a","prompt":"b"}`, param: "prompt"},
		{name: "bad max_tokens", body: `{"model":"m","prompt":"a","max_tokens":-1}`, param: "max_tokens"},
		{name: "bad stream", body: `{"model":"m","prompt":"a","stream":"yes"}`, param: "stream"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseCompletionsRequest([]byte(tt.body))
			if tt.param != "" {
				var re *RequestError
				if !errors.As(err, &re) || re.Param != tt.param {
					t.Fatalf("ParseCompletionsRequest(%s) = %v; want a RequestError on %q", tt.body, err, tt.param)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCompletionsRequest(%s) = %v", tt.body, err)
			}
			if r.Model != "m" || r.Stream != tt.stream || r.IncludeUsage != tt.usage || r.User != tt.user || r.MaxTokens != tt.maxTokens {
				t.Errorf("ParseCompletionsRequest(%s) = %+v", tt.body, r)
			}
		})
	}
}
