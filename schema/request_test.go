package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const msgs = `"messages":[{"role":"user","content":"hi"}]`

func TestParseChatRequestErrors(t *testing.T) {
	deep := `{"model":"m",` + msgs + `,"x":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`
	tests := []struct {
		name, body, param, msg string
	}{
		{"empty", ``, "", "the body is empty"},
		{"spaces", " \n\t", "", "the body is empty"},
		{"not UTF-8", "{\"model\":\"m\xff\"," + msgs + "}", "", "not valid UTF-8"},
		{"invalid JSON", `{"model":"m",}`, "", "invalid JSON at offset 13"},
		{"truncated", `{"model":"m"`, "", "invalid JSON"},
		{"trailing garbage", `{"model":"m"} x`, "", "invalid JSON"},
		{"array", `[1,2]`, "", "must be a JSON object, not an array"},
		{"string", `"hi"`, "", "must be a JSON object, not a string"},
		{"too deep", deep, "", "deeper than 64 levels"},
		{"model missing", `{` + msgs + `}`, "model", "you must provide a model parameter"},
		{"model null", `{"model":null,` + msgs + `}`, "model", "you must provide a model parameter"},
		{"model empty", `{"model":"",` + msgs + `}`, "model", "you must provide a model parameter"},
		{"model number", `{"model":4,` + msgs + `}`, "model", "expected a string, but got a number"},
		{"duplicate model", `{"model":"a","model":"b",` + msgs + `}`, "model", "duplicate key 'model'"},
		{"escaped duplicate model", `{"model":"a","mod\u0065l":"b",` + msgs + `}`, "model", "duplicate key 'model'"},
		{"messages missing", `{"model":"m"}`, "messages", "missing required parameter: 'messages'"},
		{"messages null", `{"model":"m","messages":null}`, "messages", "missing required parameter"},
		{"messages object", `{"model":"m","messages":{}}`, "messages", "expected an array, but got an object"},
		{"messages empty", `{"model":"m","messages":[]}`, "messages", "empty array"},
		{"message not object", `{"model":"m","messages":["hi"]}`, "messages[0]", "expected an object"},
		{"role missing", `{"model":"m","messages":[{"role":"user"},{"content":"x"}]}`, "messages[1].role", "missing required parameter"},
		{"role number", `{"model":"m","messages":[{"role":1}]}`, "messages[0].role", "expected a string"},
		{"stream string", `{"model":"m",` + msgs + `,"stream":"yes"}`, "stream", "expected a boolean, but got a string"},
		{"stream_options array", `{"model":"m",` + msgs + `,"stream":true,"stream_options":[]}`, "stream_options", "expected an object"},
		{"include_usage number", `{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":1}}`, "stream_options.include_usage", "expected a boolean"},
		{"stream_options without stream", `{"model":"m",` + msgs + `,"stream_options":{"include_usage":true}}`, "stream_options", "only allowed when 'stream' is enabled"},
		{"user number", `{"model":"m",` + msgs + `,"user":5}`, "user", "expected a string"},
		{"safety_identifier bool", `{"model":"m",` + msgs + `,"safety_identifier":true}`, "safety_identifier", "expected a string"},
		{"response_format string", `{"model":"m",` + msgs + `,"response_format":"json"}`, "response_format", "expected an object"},
		{"response_format no type", `{"model":"m",` + msgs + `,"response_format":{}}`, "response_format.type", "missing required parameter"},
		{"response_format bad type", `{"model":"m",` + msgs + `,"response_format":{"type":"xml"}}`, "response_format.type", "invalid value"},
		{"json_schema missing", `{"model":"m",` + msgs + `,"response_format":{"type":"json_schema"}}`, "response_format.json_schema", "missing required parameter"},
		{"json_schema schema string", `{"model":"m",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":"{}"}}}`, "response_format.json_schema.schema", "expected an object"},
		{"tools object", `{"model":"m",` + msgs + `,"tools":{}}`, "tools", "expected an array"},
		{"tools empty", `{"model":"m",` + msgs + `,"tools":[]}`, "tools", "empty array"},
		{"tool no type", `{"model":"m",` + msgs + `,"tools":[{"function":{"name":"f"}}]}`, "tools[0].type", "missing required parameter"},
		{"tool no function", `{"model":"m",` + msgs + `,"tools":[{"type":"function"}]}`, "tools[0].function", "missing required parameter"},
		{"tool no name", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{}}]}`, "tools[1].function.name", "missing required parameter"},
		{"tool empty name", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":""}}]}`, "tools[0].function.name", "empty string"},
		{"tool parameters string", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":"{}"}}]}`, "tools[0].function.parameters", "expected an object"},
		{"tool_choice without tools", `{"model":"m",` + msgs + `,"tool_choice":"auto"}`, "tool_choice", "only allowed when 'tools' are specified"},
		{"tool_choice bad string", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"always"}`, "tool_choice", "invalid value"},
		{"tool_choice no name", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function"}}`, "tool_choice.function.name", "non-empty string"},
		{"tool_choice number", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":1}`, "tool_choice", "expected a string or an object"},
		{"temperature string", `{"model":"m",` + msgs + `,"temperature":"hot"}`, "temperature", "expected a number"},
		{"max_tokens negative", `{"model":"m",` + msgs + `,"max_tokens":-1}`, "max_tokens", "non-negative integer"},
		{"max_tokens fraction", `{"model":"m",` + msgs + `,"max_tokens":1.5}`, "max_tokens", "non-negative integer"},
		{"max_completion_tokens string", `{"model":"m",` + msgs + `,"max_completion_tokens":"9"}`, "max_completion_tokens", "expected an integer"},
		{"parallel_tool_calls string", `{"model":"m",` + msgs + `,"parallel_tool_calls":"no"}`, "parallel_tool_calls", "expected a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseChatRequest([]byte(tt.body))
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("ParseChatRequest(%q) = %v; want a *RequestError", tt.body, err)
			}
			if re.Param != tt.param || !strings.Contains(re.Message, tt.msg) {
				t.Errorf("ParseChatRequest(%q) = {%q, %q}; want {%q, …%q…}", tt.body, re.Param, re.Message, tt.param, tt.msg)
			}
		})
	}
}

func TestParseChatRequest(t *testing.T) {
	body := []byte(` {"model":"support-bot","stream":true,"stream_options":{"include_usage":true},` + msgs + `,
		"safety_identifier":"u-2","temperature":0.2,"max_tokens":100,"max_completion_tokens":50,
		"parallel_tool_calls":false,
		"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},
		"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}},{"type":"function","function":{"name":"g"}}],
		"tool_choice":{"type":"function","function":{"name":"g"}},"other":[1,{"model":"nested"}]}`)
	r, err := ParseChatRequest(body)
	if err != nil {
		t.Fatalf("ParseChatRequest = %v", err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("ParseChatRequest(…).%s = %v; want %v", name, got, want)
		}
	}
	check("Model", r.Model, "support-bot")
	check("Stream", r.Stream, true)
	check("IncludeUsage", r.IncludeUsage, true)
	check("User", r.User, "u-2")
	check("ResponseFormat", r.ResponseFormat, "json_schema")
	check("ResponseSchema", string(r.ResponseSchema), `{"type":"object"}`)
	check("ToolCount", r.ToolCount, 2)
	check("Tools", string(r.Tools), `[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}},{"type":"function","function":{"name":"g"}}]`)
	check("ToolChoice", string(r.ToolChoice), `{"type":"function","function":{"name":"g"}}`)
	check("Temperature", r.Temperature, 0.2)
	check("HasTemperature", r.HasTemperature, true)
	check("MaxTokens", r.MaxTokens, 50)
	check("ParallelToolCalls", *r.ParallelToolCalls, false)
	check("MessageCount", r.MessageCount, 1)

	// The byte fields alias the body; the strings do not.
	body[len(body)-3] = 'X'
	if &r.ResponseSchema[0] != &body[strings.Index(string(body), `{"type":"object"}`)] {
		t.Errorf("ResponseSchema does not alias the body")
	}
	i := strings.Index(string(body), "support-bot")
	body[i] = 'X'
	check("Model after body change", r.Model, "support-bot")

	r, err = ParseChatRequest([]byte(`{"user":"u-1","safety_identifier":"u-2","model":"m",` + msgs + `,"max_tokens":7,"stream":false}`))
	if err != nil {
		t.Fatalf("ParseChatRequest = %v", err)
	}
	check("User (user wins)", r.User, "u-1")
	check("MaxTokens (max_tokens)", r.MaxTokens, 7)
	check("Temperature absent", r.HasTemperature, false)
	check("Tools nil", r.Tools == nil, true)
	check("ResponseFormat empty", r.ResponseFormat, "")
}

func TestParseEmbeddingsRequest(t *testing.T) {
	tests := []struct {
		body, param string // param "" means success
	}{
		{`{"model":"e","input":"hello"}`, ""},
		{`{"model":"e","input":["a","b"]}`, ""},
		{`{"model":"e","input":[[1,2]],"user":"u"}`, ""},
		{`{"input":"x"}`, "model"},
		{`{"model":"e"}`, "input"},
		{`{"model":"e","input":null}`, "input"},
		{`{"model":"e","input":[]}`, "input"},
		{`{"model":"e","input":5}`, "input"},
		{`{"model":"e","input":"a","input":"b"}`, "input"},
		{`[]`, ""},
	}
	for _, tt := range tests {
		r, err := ParseEmbeddingsRequest([]byte(tt.body))
		var re *RequestError
		switch {
		case tt.body == `[]`:
			if !errors.As(err, &re) {
				t.Errorf("ParseEmbeddingsRequest(%q) = %v; want a *RequestError", tt.body, err)
			}
		case tt.param == "":
			if err != nil || r.Model != "e" {
				t.Errorf("ParseEmbeddingsRequest(%q) = %+v, %v; want model e, nil", tt.body, r, err)
			}
		case !errors.As(err, &re) || re.Param != tt.param:
			t.Errorf("ParseEmbeddingsRequest(%q) = %v; want a *RequestError for %q", tt.body, err, tt.param)
		}
	}
}

func FuzzParseChatRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m",` + msgs + `}`))
	f.Add([]byte(`{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":false},"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"required"}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user"}],"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"object"}}}}`))
	f.Add([]byte(`{"model":"\u00e9","messages":[{"role":"a"}]}`))
	f.Add([]byte(`[[[[`))
	f.Add([]byte("{\"model\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := append([]byte(nil), body...)
		r, err := ParseChatRequest(body)
		if string(body) != string(orig) {
			t.Fatalf("ParseChatRequest modified its input")
		}
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("ParseChatRequest(%q) = %v; want only *RequestError", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("ParseChatRequest(%q) accepted invalid JSON", body)
		}
		model, n, err := modelAndMessages(body)
		if err != nil || model != r.Model || n != r.MessageCount {
			t.Fatalf("ParseChatRequest(%q) = model %q, %d messages; encoding/json reads %q, %d (%v)", body, r.Model, r.MessageCount, model, n, err)
		}
		// Whatever parses must rewrite to valid JSON with the new model.
		out, err := RewriteRequest(nil, body, "up", "sys", r.Stream)
		if err != nil || !json.Valid(out) {
			t.Fatalf("RewriteRequest(%q) = %q, %v; want valid JSON", body, out, err)
		}
		if model, n, err = modelAndMessages(out); err != nil || model != "up" || n != r.MessageCount+1 {
			t.Fatalf("RewriteRequest(%q) = %q; model %q, %d messages", body, out, model, n)
		}
	})
}

// modelAndMessages reads model and the message count with encoding/json,
// exact key match (a map, not a struct, which would match keys
// case-insensitively).
func modelAndMessages(body []byte) (string, int, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return "", 0, err
	}
	var model string
	var messages []json.RawMessage
	if err := json.Unmarshal(m["model"], &model); err != nil {
		return "", 0, err
	}
	if err := json.Unmarshal(m["messages"], &messages); err != nil {
		return "", 0, err
	}
	return model, len(messages), nil
}
