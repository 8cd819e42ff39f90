package schema

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func accumulate(t testing.TB, stream string) *StreamAccumulator {
	t.Helper()
	var p SSEParser
	a := &StreamAccumulator{}
	fn := func(e Event) error {
		if !e.Done {
			a.Add(e.Data)
		}
		return nil
	}
	if err := p.Feed([]byte(stream), fn); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(fn); err != nil {
		t.Fatal(err)
	}
	return a
}

func sse(chunks ...string) string {
	var b strings.Builder
	for _, c := range chunks {
		b.WriteString("data: " + c + "\n\n")
	}
	return b.String()
}

func TestStreamAccumulatorContent(t *testing.T) {
	a := accumulate(t, sse(
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o-mini-2024","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}`,
		`{"id":"chatcmpl-1","model":"gpt-4o-mini-2024","choices":[{"index":0,"delta":{"content":"{\"a\":"},"finish_reason":null}]}`,
		`{"id":"chatcmpl-1","model":"other","choices":[{"index":1,"delta":{"content":"IGNORED"}},{"index":0,"delta":{"content":" \"h\u00e9\\n\ud83d\ude00\"}"}}]}`,
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		`{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`,
		`[DONE]`,
	))
	if got, want := a.Content(), "{\"a\": \"hé\\n😀\"}"; got != want {
		t.Errorf("Content() = %q; want %q", got, want)
	}
	if got := a.FinishReason(); got != "stop" {
		t.Errorf("FinishReason() = %q; want stop", got)
	}
	if u, ok := a.Usage(); !ok || u != (Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15}) {
		t.Errorf("Usage() = %+v, %v; want {10 5 15}, true", u, ok)
	}
	if a.Model() != "gpt-4o-mini-2024" || a.ID() != "chatcmpl-1" {
		t.Errorf("Model(), ID() = %q, %q", a.Model(), a.ID())
	}
	if a.Err() != nil || a.LegacyFunctionCall() || a.ToolCalls() != nil {
		t.Errorf("Err, Legacy, ToolCalls = %q, %v, %v; want none", a.Err(), a.LegacyFunctionCall(), a.ToolCalls())
	}
	if total, bad := a.Chunks(); total != 5 || bad != 0 {
		t.Errorf("Chunks() = %d, %d; want 5, 0", total, bad)
	}
}

func TestStreamAccumulatorToolCalls(t *testing.T) {
	a := accumulate(t, sse(
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"Paris\"}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
	))
	want := []ToolCall{
		{Index: 0, ID: "call_a", Type: "function", Name: "get_weather", Arguments: `{"city": "Paris"}`},
		{Index: 1, ID: "call_b", Type: "function", Name: "get_time", Arguments: `{}`},
	}
	if got := a.ToolCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("ToolCalls() = %+v; want %+v", got, want)
	}
	if a.FinishReason() != "tool_calls" {
		t.Errorf("FinishReason() = %q", a.FinishReason())
	}

	// Out-of-order indexes, a server that repeats the name, one without
	// indexes, and one that splits the name.
	a = accumulate(t, sse(
		`{"choices":[{"delta":{"tool_calls":[{"index":2,"id":"c2","function":{"name":"f","arguments":"{"}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c0","function":{"name":"get_","arguments":""}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"index":2,"function":{"name":"f","arguments":"}"}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"weather","arguments":"[]"}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"id":"c3","function":{"name":"g","arguments":"{\"x\""}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}`,
	))
	want = []ToolCall{
		{Index: 0, ID: "c0", Type: "function", Name: "get_weather", Arguments: `[]`},
		{Index: 2, ID: "c2", Type: "function", Name: "f", Arguments: `{}`},
		{Index: 3, ID: "c3", Type: "function", Name: "g", Arguments: `{"x":1}`},
	}
	if got := a.ToolCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("ToolCalls() = %+v; want %+v", got, want)
	}
}

func TestStreamAccumulatorLegacyAndErrors(t *testing.T) {
	a := accumulate(t, sse(
		`{"choices":[{"index":0,"delta":{"function_call":{"name":"f","arguments":"{\"a\""}}}]}`,
		`{"choices":[{"index":0,"delta":{"function_call":{"arguments":":1}"}}}]}`,
		`not json`,
		`{"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}`,
	))
	if !a.LegacyFunctionCall() {
		t.Errorf("LegacyFunctionCall() = false; want true")
	}
	if got, want := string(a.Err()), `{"message":"overloaded","type":"server_error","code":"overloaded"}`; got != want {
		t.Errorf("Err() = %s; want %s", got, want)
	}
	if _, bad := a.Chunks(); bad != 1 {
		t.Errorf("Chunks() malformed = %d; want 1", bad)
	}
	if _, ok := a.Usage(); ok {
		t.Errorf("Usage() ok = true for a stream without a usage chunk")
	}

	a.Reset()
	a.Add([]byte(`{"choices":[{"delta":{"content":"x","tool_calls":[{"index":0,"id":"i","function":{"name":"n","arguments":"{}"}}]}}]}`))
	if a.Content() != "x" || a.LegacyFunctionCall() || a.Err() != nil || len(a.ToolCalls()) != 1 || a.ToolCalls()[0].ID != "i" {
		t.Errorf("after Reset: %q %v %q %+v", a.Content(), a.LegacyFunctionCall(), a.Err(), a.ToolCalls())
	}
	a.Reset()
	if a.Content() != "" || a.ToolCalls() != nil {
		t.Errorf("Reset left %q %+v", a.Content(), a.ToolCalls())
	}
}

func TestStreamAccumulatorBounds(t *testing.T) {
	var a StreamAccumulator
	for i := range MaxToolCalls + 5 {
		a.Add([]byte(`{"choices":[{"delta":{"tool_calls":[{"index":` + strconv.Itoa(i) + `,"id":"x","function":{"name":"f","arguments":"{}"}}]}}]}`))
	}
	if len(a.ToolCalls()) != MaxToolCalls || !a.Truncated() {
		t.Errorf("ToolCalls() = %d, Truncated() = %v; want %d, true", len(a.ToolCalls()), a.Truncated(), MaxToolCalls)
	}
	a.Reset()
	a.Add([]byte(`{"choices":[{"delta":{"tool_calls":[{"index":1e300,"id":"x"}]}}]}`)) // absurd index: treated as missing
	if len(a.ToolCalls()) != 1 {
		t.Errorf("ToolCalls() = %+v", a.ToolCalls())
	}
}

func TestIsUsageOnlyChunk(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, true},
		{`{"choices":[ ],"usage":{}}`, true},
		{`{"choices":[{"delta":{}}],"usage":{"total_tokens":3}}`, false},
		{`{"choices":[],"usage":null}`, false},
		{`{"choices":[]}`, false},
		{`{"usage":{}}`, false},
		{`[DONE]`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := IsUsageOnlyChunk([]byte(tt.in)); got != tt.want {
			t.Errorf("IsUsageOnlyChunk(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestReadUsage(t *testing.T) {
	tests := []struct {
		in   string
		want Usage
		ok   bool
	}{
		{`{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0}}}`, Usage{12, 3, 15, 0}, true},
		{`{"usage":{"prompt_tokens":100,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":40}}}`, Usage{100, 3, 103, 40}, true},
		{`{"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}`, Usage{8, 0, 8, 0}, true},
		{`{"usage":{"prompt_tokens":2,"completion_tokens":3}}`, Usage{2, 3, 5, 0}, true},
		{`{"usage":{"prompt_tokens":-2,"completion_tokens":"3"}}`, Usage{0, 0, 0, 0}, true},
		{`{"usage":null}`, Usage{}, false},
		{`{}`, Usage{}, false},
		{`nope`, Usage{}, false},
	}
	for _, tt := range tests {
		if got, ok := ReadUsage([]byte(tt.in)); got != tt.want || ok != tt.ok {
			t.Errorf("ReadUsage(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestAppendUnquote(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"plain"`, "plain"},
		{`"a\"b\\c\/d\b\f\n\r\t"`, "a\"b\\c/d\b\f\n\r\t"},
		{`"\u00e9\u65e5\ud83d\ude00"`, "é日😀"},
		{`"\ud83d"`, "\uFFFD"},
		{`"\ud83dx"`, "\uFFFDx"},
		{`"\uZZZZ"`, `\uZZZZ`},
		{`"\q"`, `\q`},
		{`"trailing\"`, `trailing\`},
	}
	for _, tt := range tests {
		if got := string(appendUnquote(nil, tt.in)); got != tt.want {
			t.Errorf("appendUnquote(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
