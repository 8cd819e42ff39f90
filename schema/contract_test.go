package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/cairnhq/cairn/configs"
)

const routeSchema = `{"type":"object","properties":{"answer":{"type":"string"},"confidence":{"type":"number","minimum":0,"maximum":1}},"required":["answer","confidence"]}`

const weatherTool = `{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"confidence":{"type":"number"}},"required":["city","confidence"],"additionalProperties":false}}}`

const timeTool = `{"type":"function","function":{"name":"get_time"}}`

func mustCompile(t testing.TB, s string) *jsonschema.Schema {
	t.Helper()
	if s == "" {
		return nil
	}
	c, err := configs.CompileSchema([]byte(s), "mem://cairn/test-route.json")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// call is a tool call in a test response.
type call struct{ name, args string }

type reply struct {
	content *string
	refusal string
	calls   []call
	legacy  bool
	finish  string
}

func str(s string) *string { return &s }

// body renders r as a chat.completion body.
func (r reply) body() []byte {
	msg := map[string]any{"role": "assistant", "content": r.content}
	if r.refusal != "" {
		msg["refusal"] = r.refusal
	}
	if len(r.calls) > 0 {
		var tcs []any
		for i, c := range r.calls {
			tcs = append(tcs, map[string]any{"id": fmt.Sprintf("call_%d", i), "type": "function",
				"function": map[string]any{"name": c.name, "arguments": c.args}})
		}
		msg["tool_calls"] = tcs
	}
	if r.legacy {
		msg["function_call"] = map[string]any{"name": "get_weather", "arguments": `{"city":"x","confidence":1}`}
	}
	finish := r.finish
	if finish == "" {
		finish = "stop"
	}
	b, _ := json.Marshal(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}}})
	return b
}

// stream renders r as SSE chunks, cutting content and arguments into
// 3-byte pieces.
func (r reply) stream() string {
	var chunks []string
	add := func(delta map[string]any, finish any) {
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		chunks = append(chunks, string(b))
	}
	add(map[string]any{"role": "assistant"}, nil)
	pieces := func(s string) []string {
		var out []string
		for len(s) > 3 {
			out = append(out, s[:3])
			s = s[3:]
		}
		return append(out, s)
	}
	if r.content != nil {
		for _, p := range pieces(*r.content) {
			add(map[string]any{"content": p}, nil)
		}
	}
	if r.refusal != "" {
		add(map[string]any{"refusal": r.refusal}, nil)
	}
	for i, c := range r.calls {
		add(map[string]any{"tool_calls": []any{map[string]any{"index": i, "id": fmt.Sprintf("call_%d", i), "type": "function",
			"function": map[string]any{"name": c.name, "arguments": ""}}}}, nil)
		for _, p := range pieces(c.args) {
			add(map[string]any{"tool_calls": []any{map[string]any{"index": i, "function": map[string]any{"arguments": p}}}}, nil)
		}
	}
	if r.legacy {
		add(map[string]any{"function_call": map[string]any{"name": "get_weather", "arguments": `{"city":"x","confidence":1}`}}, nil)
	}
	finish := r.finish
	if finish == "" {
		finish = "stop"
	}
	add(map[string]any{}, finish)
	chunks = append(chunks, `{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, "[DONE]")
	return sse(chunks...)
}

func chatBody(extra string) []byte {
	b := `{"model":"route",` + msgs
	if extra != "" {
		b += "," + extra
	}
	return []byte(b + "}")
}

func TestContractVerdicts(t *testing.T) {
	tools := `"tools":[` + weatherTool + `,` + timeTool + `]`
	good := `{"answer":"yes","confidence":0.9}`
	goodArgs := `{"city":"Paris","confidence":0.5}`
	tests := []struct {
		name    string
		route   string // route schema
		extra   string // request fields
		reply   reply
		result  string
		reasons []string
	}{
		{"no contract", "", "", reply{content: str("anything")}, "none", nil},
		{"text format is no contract", "", `"response_format":{"type":"text"}`, reply{content: str("x")}, "none", nil},

		// route schema_file
		{"route pass", routeSchema, "", reply{content: str(good)}, "pass", nil},
		{"route pass with whitespace", routeSchema, "", reply{content: str("\n  " + good + "\n")}, "pass", nil},
		{"route missing property", routeSchema, "", reply{content: str(`{"answer":"yes"}`)}, "fail", []string{"/confidence: missing property"}},
		{"route wrong type and range", routeSchema, "", reply{content: str(`{"answer":1,"confidence":7}`)}, "fail",
			[]string{"/answer: expected string, but got number", "/confidence: must be <= 1 but found 7"}},
		{"route root type", routeSchema, "", reply{content: str(`[1]`)}, "fail", []string{"content: expected object, but got array"}},
		{"route text before JSON", routeSchema, "", reply{content: str("Sure! Here it is: " + good)}, "fail", []string{"content: text around JSON"}},
		{"route text after JSON", routeSchema, "", reply{content: str(good + "\nHope this helps.")}, "fail", []string{"content: text around JSON"}},
		{"route markdown fence", routeSchema, "", reply{content: str("```json\n" + good + "\n```")}, "fail", []string{"content: JSON wrapped in a markdown code fence"}},
		{"route fence after text", routeSchema, "", reply{content: str("Here:\n```\n" + good + "\n```")}, "fail", []string{"content: JSON wrapped in a markdown code fence"}},
		{"route two values", routeSchema, "", reply{content: str(good + good)}, "fail", []string{"content: more than one JSON value"}},
		{"route invalid JSON", routeSchema, "", reply{content: str(`{"answer": yes}`)}, "fail", []string{"content: invalid JSON at offset 11"}},
		{"route plain text", routeSchema, "", reply{content: str(`I cannot answer that.`)}, "fail", []string{"content: invalid JSON at offset 0"}},
		{"route null content", routeSchema, "", reply{}, "fail", []string{"content: empty, expected JSON"}},
		{"route cut by length", routeSchema, "", reply{content: str(`{"answer":"ye`), finish: "length"}, "fail",
			[]string{"content: invalid JSON at offset 13 (output cut off: finish_reason length)"}},
		{"route cut short", routeSchema, "", reply{content: str(`{"answer":"ye`)}, "fail", []string{"content: invalid JSON at offset 13 (unexpected end)"}},
		{"route tool call without tools", routeSchema, "", reply{calls: []call{{"f", "{}"}}}, "fail", []string{"content: empty, expected JSON"}},

		// response_format json_object
		{"json_object pass", "", `"response_format":{"type":"json_object"}`, reply{content: str(`{"a":[1,2]}`)}, "pass", nil},
		{"json_object array", "", `"response_format":{"type":"json_object"}`, reply{content: str(`[1,2]`)}, "fail", []string{"content: expected a JSON object, got array"}},
		{"json_object string", "", `"response_format":{"type":"json_object"}`, reply{content: str(`"x"`)}, "fail", []string{"content: expected a JSON object, got string"}},
		{"json_object text around", "", `"response_format":{"type":"json_object"}`, reply{content: str(`Result: {"a":1}`)}, "fail", []string{"content: text around JSON"}},
		{"json_object empty", "", `"response_format":{"type":"json_object"}`, reply{content: str("  ")}, "fail", []string{"content: empty, expected JSON"}},

		// response_format json_schema
		{"json_schema pass", "", `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + routeSchema + `}}`, reply{content: str(good)}, "pass", nil},
		{"json_schema missing", "", `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + routeSchema + `}}`,
			reply{content: str(`{"answer":"x"}`)}, "fail", []string{"/confidence: missing property"}},
		{"json_schema type", "", `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + routeSchema + `}}`,
			reply{content: str(`{"answer":"x","confidence":"high"}`)}, "fail", []string{"/confidence: expected number, but got string"}},
		{"json_schema no schema", "", `"response_format":{"type":"json_schema","json_schema":{"name":"r"}}`, reply{content: str(`[1]`)}, "pass", nil},
		{"json_schema no schema text", "", `"response_format":{"type":"json_schema","json_schema":{"name":"r"}}`, reply{content: str(`nope`)}, "fail",
			[]string{"content: invalid JSON at offset 1"}},
		{"json_schema refusal", "", `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + routeSchema + `}}`,
			reply{refusal: "I can't help with that."}, "fail", []string{"content: refusal instead of JSON"}},
		{"route and json_schema same failure once", routeSchema, `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + routeSchema + `}}`,
			reply{content: str(`{"answer":"x"}`)}, "fail", []string{"/confidence: missing property"}},
		{"json_schema anyOf", "", `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object","properties":{"v":{"anyOf":[{"type":"string"},{"type":"null"}]}}}}}`,
			reply{content: str(`{"v":3}`)}, "fail", []string{"/v: expected string or null, but got number"}},
		{"json_schema enum and extra", "", `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object","properties":{"v":{"enum":["a","b"]}},"additionalProperties":false}}}`,
			reply{content: str(`{"v":"c","w":1}`)}, "fail", []string{`/v: value must be one of "a", "b"`, "/w: unexpected property"}},
		{"json_schema format hides value", "", `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"properties":{"e":{"type":"string","format":"email"}}}}}`,
			reply{content: str(`{"e":"jane.doe at example"}`)}, "fail", []string{"/e: not a valid 'email'"}},

		// tools
		{"tools pass", "", tools, reply{calls: []call{{"get_weather", goodArgs}}, finish: "tool_calls"}, "pass", nil},
		{"tools plain answer passes", "", tools, reply{content: str("It is sunny.")}, "pass", nil},
		{"tools two calls", "", tools, reply{calls: []call{{"get_weather", goodArgs}, {"get_time", "{}"}}}, "pass", nil},
		{"tool without parameters empty args", "", tools, reply{calls: []call{{"get_time", ""}}}, "pass", nil},
		{"tool undeclared", "", tools, reply{calls: []call{{"get_wether", goodArgs}}}, "fail", []string{`tool_calls[0].function.name: "get_wether" is not a declared tool`}},
		{"tool invalid arguments", "", tools, reply{calls: []call{{"get_weather", `{"city":"Paris",}`}}}, "fail", []string{"tool_calls[0].arguments: invalid JSON at offset 16"}},
		{"tool empty arguments", "", tools, reply{calls: []call{{"get_weather", ``}}}, "fail", []string{"tool_calls[0].arguments: empty, expected JSON"}},
		{"tool arguments missing property", "", tools, reply{calls: []call{{"get_weather", `{"city":"Paris"}`}}}, "fail", []string{"tool_calls[0].arguments/confidence: missing property"}},
		{"tool arguments unexpected property", "", tools, reply{calls: []call{{"get_time", "{}"}, {"get_weather", `{"city":"P","confidence":1,"unit":"C"}`}}}, "fail",
			[]string{"tool_calls[1].arguments/unit: unexpected property"}},
		{"tool arguments double-encoded", "", tools, reply{calls: []call{{"get_weather", `"{\"city\":\"Paris\",\"confidence\":0.5}"`}}}, "fail",
			[]string{"tool_calls[0].arguments: JSON encoded twice (a JSON string containing JSON)"}},
		{"tool arguments wrapped in arguments", "", tools, reply{calls: []call{{"get_weather", `{"arguments":` + goodArgs + `}`}}}, "fail",
			[]string{`tool_calls[0].arguments: arguments wrapped in {"arguments": …}`}},
		{"tool arguments wrapped in parameters string", "", tools, reply{calls: []call{{"get_weather", `{"parameters":"{\"city\":\"Paris\"}"}`}}}, "fail",
			[]string{`tool_calls[0].arguments: arguments wrapped in {"parameters": …}`}},
		{"tool arguments wrapped in function name", "", tools, reply{calls: []call{{"get_weather", `{"get_weather":` + goodArgs + `}`}}}, "fail",
			[]string{`tool_calls[0].arguments: arguments wrapped in {"get_weather": …}`}},
		{"tool arguments wrapped as whole call", "", tools, reply{calls: []call{{"get_weather", `{"name":"get_weather","arguments":` + goodArgs + `}`}}}, "fail",
			[]string{`tool_calls[0].arguments: arguments wrapped in {"name": …, "arguments": …} (the whole call)`}},
		{"tool arguments wrapped without parameters", "", tools, reply{calls: []call{{"get_time", `{"input":{"tz":"UTC"}}`}}}, "fail",
			[]string{`tool_calls[0].arguments: arguments wrapped in {"input": …}`}},
		{"tool arguments in markdown fence", "", tools, reply{calls: []call{{"get_weather", "```json\n" + goodArgs + "\n```"}}}, "fail",
			[]string{"tool_calls[0].arguments: JSON wrapped in a markdown code fence"}},
		{"tool arguments with text", "", tools, reply{calls: []call{{"get_weather", "Calling: " + goodArgs}}}, "fail",
			[]string{"tool_calls[0].arguments: text around JSON"}},
		{"tool arguments array", "", tools, reply{calls: []call{{"get_weather", `[1]`}}}, "fail", []string{"tool_calls[0].arguments: expected a JSON object, got array"}},
		{"tool arguments plain string", "", tools, reply{calls: []call{{"get_weather", `"Paris"`}}}, "fail", []string{"tool_calls[0].arguments: expected a JSON object, got string"}},
		{"tool arguments cut by length", "", tools, reply{calls: []call{{"get_weather", `{"city":"Pa`}}, finish: "length"}, "fail",
			[]string{"tool_calls[0].arguments: invalid JSON at offset 11 (output cut off: finish_reason length)"}},
		{"declared arguments property is not a wrapper", "",
			`"tools":[{"type":"function","function":{"name":"run","parameters":{"type":"object","properties":{"arguments":{"type":"object"}}}}}]`,
			reply{calls: []call{{"run", `{"arguments":{"x":1}}`}}}, "pass", nil},
		{"legacy function_call", "", tools, reply{legacy: true, finish: "function_call"}, "fail", []string{"legacy function_call instead of tool_calls"}},
		{"tool call with route schema skips content", routeSchema, tools, reply{calls: []call{{"get_weather", goodArgs}}}, "pass", nil},
		{"tool call and bad content", routeSchema, tools, reply{content: str("calling"), calls: []call{{"get_weather", goodArgs}}}, "fail",
			[]string{"content: invalid JSON at offset 0"}},

		// tool_choice and parallel_tool_calls
		{"required without call", "", tools + `,"tool_choice":"required"`, reply{content: str("hi")}, "fail", []string{"tool_calls: missing, but tool_choice requires a tool call"}},
		{"required with call", "", tools + `,"tool_choice":"required"`, reply{calls: []call{{"get_time", "{}"}}}, "pass", nil},
		{"named without call", "", tools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`, reply{content: str("hi")}, "fail",
			[]string{`tool_calls: missing, but tool_choice requires "get_weather"`}},
		{"named wrong call", "", tools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`, reply{calls: []call{{"get_time", "{}"}}}, "fail",
			[]string{`tool_calls[0].function.name: "get_time", but tool_choice requires "get_weather"`}},
		{"named right call", "", tools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`, reply{calls: []call{{"get_weather", goodArgs}}}, "pass", nil},
		{"allowed_tools required", "", tools + `,"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"required","tools":[]}}`, reply{content: str("x")}, "fail",
			[]string{"tool_calls: missing, but tool_choice requires a tool call"}},
		{"none with call", "", tools + `,"tool_choice":"none"`, reply{calls: []call{{"get_time", "{}"}}}, "fail", []string{`tool_calls: present, but tool_choice is "none"`}},
		{"parallel false", "", tools + `,"parallel_tool_calls":false`, reply{calls: []call{{"get_time", "{}"}, {"get_time", "{}"}}}, "fail",
			[]string{"tool_calls: 2 calls, but parallel_tool_calls is false"}},
	}
	cs := NewContracts(64)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseChatRequest(chatBody(tt.extra))
			if err != nil {
				t.Fatalf("ParseChatRequest: %v", err)
			}
			ct, err := cs.Prepare(mustCompile(t, tt.route), &req)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			want := Verdict{Result: tt.result, Reasons: tt.reasons}
			body := tt.reply.body()
			if got := ct.CheckMessage(body); !reflect.DeepEqual(got, want) {
				t.Errorf("CheckMessage(%s) = %q; want %q", body, got, want)
			}
			a := accumulate(t, tt.reply.stream())
			if got := ct.CheckStream(a); !reflect.DeepEqual(got, want) {
				t.Errorf("CheckStream(%s) = %q; want %q", tt.reply.stream(), got, want)
			}
		})
	}
}

func TestContractOddResponses(t *testing.T) {
	cs := NewContracts(8)
	req, _ := ParseChatRequest(chatBody(`"response_format":{"type":"json_object"}`))
	ct, err := cs.Prepare(nil, &req)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		body string
		want Verdict
	}{
		{`{"error":{"message":"x"}}`, Verdict{"fail", []string{"response: no choices[0].message"}}},
		{`not json`, Verdict{"fail", []string{"response: no choices[0].message"}}},
		{`{"choices":[]}`, Verdict{"fail", []string{"response: no choices[0].message"}}},
		{`{"choices":[{"message":{"content":[{"type":"text","text":"{\"a\":"},{"type":"text","text":"1}"}]}}]}`, Verdict{"pass", nil}},
		{`{"choices":[{"message":{"content":"{\"a\":1}"}}]}`, Verdict{"pass", nil}},
		{`{"choices":[{"message":{"content":"` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `"}}]}`,
			Verdict{"fail", []string{"content: JSON nests deeper than 128 levels"}}},
	}
	for _, tt := range tests {
		if got := ct.CheckMessage([]byte(tt.body)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("CheckMessage(%s) = %q; want %q", tt.body, got, tt.want)
		}
	}

	// A stream that ends in an error event fails with its own reason.
	a := accumulate(t, sse(`{"choices":[{"delta":{"content":"{\"a\":1}"}}]}`, `{"error":{"message":"overloaded"}}`))
	want := Verdict{"fail", []string{"stream: the upstream sent an error event"}}
	if got := ct.CheckStream(a); !reflect.DeepEqual(got, want) {
		t.Errorf("CheckStream(error event) = %q; want %q", got, want)
	}
	// The empty contract never reads the body.
	if got := (Contract{}).CheckMessage(nil); got.Result != "none" {
		t.Errorf("Contract{}.CheckMessage(nil) = %q; want none", got)
	}
	if got := (Contract{}).CheckStream(&StreamAccumulator{}); got.Result != "none" {
		t.Errorf("Contract{}.CheckStream = %q; want none", got)
	}
}

func TestContractReasonBounds(t *testing.T) {
	var props, req []string
	for i := range 25 {
		props = append(props, fmt.Sprintf(`"p%02d":{"type":"string"}`, i))
		req = append(req, fmt.Sprintf(`"p%02d"`, i))
	}
	schema := `{"type":"object","properties":{` + strings.Join(props, ",") + `},"required":[` + strings.Join(req, ",") + `]}`
	cs := NewContracts(8)
	r, _ := ParseChatRequest(chatBody(`"tools":[{"type":"function","function":{"name":"f","parameters":` + schema + `}}]`))
	ct, err := cs.Prepare(mustCompile(t, schema), &r)
	if err != nil {
		t.Fatal(err)
	}
	v := ct.CheckMessage(reply{content: str("{}")}.body())
	if v.Result != "fail" || len(v.Reasons) != MaxReasons || v.Reasons[MaxReasons-1] != "and 16 more reasons" {
		t.Errorf("CheckMessage(25 missing) = %q; want %d reasons ending in \"and 16 more reasons\"", v, MaxReasons)
	}
	long := strings.Repeat("é", 400)
	v = ct.CheckMessage(reply{calls: []call{{long, "{}"}}}.body())
	if len(v.Reasons) != 1 || len(v.Reasons[0]) > MaxReasonBytes || !strings.HasSuffix(v.Reasons[0], "…") || !strings.HasPrefix(v.Reasons[0], `tool_calls[0].function.name: "éé`) {
		t.Errorf("CheckMessage(long name) = %q; want one clipped reason", v)
	}
}

func TestPrepareErrors(t *testing.T) {
	rf := func(schema string) string {
		return `"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + schema + `}}`
	}
	tool := func(params string) string {
		return `"tools":[` + timeTool + `,{"type":"function","function":{"name":"f","parameters":` + params + `}}]`
	}
	// 40 levels of $defs, each referring to the next twice: 2^40 paths.
	var defs []string
	for i := range 40 {
		defs = append(defs, fmt.Sprintf(`"d%d":{"anyOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]}`, i, i+1, i+1))
	}
	defs = append(defs, `"d40":{"type":"string"}`)
	dag := `{"$defs":{` + strings.Join(defs, ",") + `},"$ref":"#/$defs/d0"}`
	big := `{"description":"` + strings.Repeat("x", 70<<10) + `"}`
	deep := strings.Repeat(`{"items":`, 33) + `{}` + strings.Repeat(`}`, 33)
	tests := []struct {
		name, extra, param, msg string
	}{
		{"invalid schema", rf(`{"type":"strnig"}`), "response_format.json_schema.schema", "invalid JSON Schema at /type"},
		{"too large", rf(big), "response_format.json_schema.schema", "larger than 64 KiB"},
		{"too deep", rf(deep), "response_format.json_schema.schema", "nests deeper than 32 levels"},
		{"remote ref", rf(`{"$ref":"https://example.com/s.json"}`), "response_format.json_schema.schema", "remote and file $ref are not allowed"},
		{"file ref", rf(`{"$ref":"file:///etc/passwd"}`), "response_format.json_schema.schema", "remote and file $ref are not allowed"},
		{"relative ref", rf(`{"$ref":"other.json"}`), "response_format.json_schema.schema", "remote and file $ref are not allowed"},
		{"missing local ref", rf(`{"$ref":"#/$defs/nope"}`), "response_format.json_schema.schema", "#/$defs/nope"},
		{"bad regex", rf(`{"pattern":"("}`), "response_format.json_schema.schema", "invalid JSON Schema at /pattern"},
		{"exponential refs", rf(dag), "response_format.json_schema.schema", "too complex"},
		{"recursive blowup", rf(`{"anyOf":[{"properties":{"a":{"$ref":"#"}}},{"properties":{"a":{"$ref":"#"}}}]}`), "response_format.json_schema.schema", "exponentially"},
		{"recursive blowup via items and contains", rf(`{"items":{"$ref":"#"},"contains":{"$ref":"#"}}`), "response_format.json_schema.schema", "exponentially"},
		{"endless loop", rf(`{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"allOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"}`), "response_format.json_schema.schema", "loop"},
		{"dynamic ref", rf(`{"$dynamicAnchor":"n","properties":{"a":{"$dynamicRef":"#n"}}}`), "response_format.json_schema.schema", "$dynamicRef"},
		{"bad tool parameters", tool(`{"type":"object","properties":{"a":{"type":7}}}`), "tools[1].function.parameters", "invalid JSON Schema at /properties/a/type"},
		{"remote ref in tool", tool(`{"$ref":"http://169.254.169.254/latest"}`), "tools[1].function.parameters", "remote and file $ref are not allowed"},
		{"duplicate function", `"tools":[` + timeTool + `,` + timeTool + `]`, "tools[1].function.name", "duplicate function name"},
		{"tool_choice unknown", `"tools":[` + timeTool + `],"tool_choice":{"type":"function","function":{"name":"nope"}}`, "tool_choice", "not among the tools"},
	}
	cs := NewContracts(64)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseChatRequest(chatBody(tt.extra))
			if err != nil {
				t.Fatalf("ParseChatRequest: %v", err)
			}
			for range 2 { // the second answer comes from the cache
				_, err = cs.Prepare(nil, &req)
				var re *RequestError
				if !errors.As(err, &re) || re.Param != tt.param || !strings.Contains(re.Message, tt.msg) {
					t.Fatalf("Prepare(%s) = %v; want a *RequestError for %q containing %q", tt.extra, err, tt.param, tt.msg)
				}
				if strings.Contains(re.Message, "mem://") || len(re.Message) > MaxReasonBytes {
					t.Errorf("Prepare(%s) message %q leaks the internal URL or is too long", tt.extra, re.Message)
				}
			}
		})
	}
}

func TestPrepareAcceptsUsualSchemas(t *testing.T) {
	schemas := []string{
		`{"type":"object","properties":{"l":{"$ref":"#"},"r":{"$ref":"#"}}}`, // binary tree
		`{"$defs":{"v":{"anyOf":[{"type":"string"},{"type":"number"},{"type":"array","items":{"$ref":"#/$defs/v"}},{"type":"object","additionalProperties":{"$ref":"#/$defs/v"}}]}},"$ref":"#/$defs/v"}`, // any JSON
		`{"$defs":{"node":{"type":"object","properties":{"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["name","children"],"additionalProperties":false}},"type":"object","properties":{"root":{"$ref":"#/$defs/node"}}}`,
		`{"$defs":{"addr":{"type":"object","properties":{"city":{"type":"string"}}}},"type":"object","properties":{"home":{"$ref":"#/$defs/addr"},"work":{"$ref":"#/$defs/addr"},"both":{"allOf":[{"$ref":"#/$defs/addr"},{"$ref":"#/$defs/addr"}]}}}`,
		`{"type":"object","properties":{"a":{"type":["string","null"]}},"required":["a"],"additionalProperties":false}`, // OpenAI strict mode
	}
	cs := NewContracts(64)
	for _, s := range schemas {
		req, err := ParseChatRequest(chatBody(`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + s + `}}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.Prepare(nil, &req); err != nil {
			t.Errorf("Prepare(%s) = %v; want nil", s, err)
		}
	}
}

func TestContractsCache(t *testing.T) {
	cs := NewContracts(2)
	body := chatBody(`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + routeSchema + `}},"tools":[` + weatherTool + `]`)
	for range 5 {
		req, err := ParseChatRequest(body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.Prepare(nil, &req); err != nil {
			t.Fatal(err)
		}
	}
	st := cs.Stats()
	if st.Compiles != 2 || st.Entries != 2 || st.Misses != 2 || st.Hits != 8 {
		t.Errorf("Stats() after 5 identical requests = %+v; want 2 compiles, 2 entries, 2 misses, 8 hits", st)
	}
	// Refusals are cached too.
	bad := chatBody(`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"nope"}}}`)
	for range 3 {
		req, _ := ParseChatRequest(bad)
		if _, err := cs.Prepare(nil, &req); err == nil {
			t.Fatal("Prepare(bad schema) = nil")
		}
	}
	if st := cs.Stats(); st.Compiles != 3 || st.Entries != 2 || st.Evictions != 1 {
		t.Errorf("Stats() after a bad schema three times = %+v; want 3 compiles, 2 entries, 1 eviction", st)
	}
	// The cache never exceeds its bound.
	for i := range 20 {
		req, _ := ParseChatRequest(chatBody(fmt.Sprintf(`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"maxLength":%d}}}`, i)))
		if _, err := cs.Prepare(nil, &req); err != nil {
			t.Fatal(err)
		}
	}
	if st := cs.Stats(); st.Entries != 2 {
		t.Errorf("Stats().Entries = %d; want 2", st.Entries)
	}
}

func TestContractsConcurrent(t *testing.T) {
	cs := NewContracts(4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				n := (g + i) % 6
				req, err := ParseChatRequest(chatBody(fmt.Sprintf(`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object","required":["k%d"]}}}`, n)))
				if err != nil {
					t.Error(err)
					return
				}
				ct, err := cs.Prepare(nil, &req)
				if err != nil {
					t.Error(err)
					return
				}
				v := ct.CheckMessage(reply{content: str(fmt.Sprintf(`{"k%d":1}`, n))}.body())
				if v.Result != "pass" {
					t.Errorf("CheckMessage = %q; want pass", v)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := cs.Stats(); st.Entries > 4 {
		t.Errorf("Stats().Entries = %d; want <= 4", st.Entries)
	}
}

func FuzzCheckContent(f *testing.F) {
	f.Add(`{"answer":"x","confidence":0.5}`, `{"city":"P","confidence":1}`, "stop")
	f.Add("```json\n{}\n```", `"{\"a\":1}"`, "length")
	f.Add(`Sure: {"a":[1,2,{"b":null}]} ok`, `{"arguments":{"city":"x"}}`, "tool_calls")
	f.Add(strings.Repeat("[", 300), `{"name":"get_weather","arguments":"{}"}`, "")
	f.Add("\xff\xfe{", "{\"city\":\"\xff\"}", "stop")
	f.Add(`{"answer":"x","confidence":1e400}`, `{"city":"x","confidence":-0}`, "stop")
	cs := NewContracts(8)
	req, err := ParseChatRequest(chatBody(`"response_format":{"type":"json_object"},"tools":[` + weatherTool + `,` + timeTool + `]`))
	if err != nil {
		f.Fatal(err)
	}
	ct, err := cs.Prepare(mustCompile(f, routeSchema), &req)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, content, args, finish string) {
		r := reply{content: &content, calls: []call{{"get_weather", args}, {"get_time", args}}, finish: finish}
		check := func(v Verdict) {
			if v.Result != "pass" && v.Result != "fail" {
				t.Fatalf("verdict %q", v)
			}
			if len(v.Reasons) > MaxReasons {
				t.Fatalf("%d reasons", len(v.Reasons))
			}
			for _, s := range v.Reasons {
				if len(s) > MaxReasonBytes {
					t.Fatalf("reason of %d bytes", len(s))
				}
			}
		}
		check(ct.CheckMessage(r.body()))
		check(ct.CheckStream(accumulate(t, r.stream())))
		// Raw content as the message body itself, too.
		check(ct.CheckMessage([]byte(content)))
	})
}

func FuzzPrepareSchema(f *testing.F) {
	f.Add(routeSchema, `{"answer":"x","confidence":0.5}`)
	f.Add(`{"$defs":{"n":{"properties":{"c":{"items":{"$ref":"#/$defs/n"}}}}},"$ref":"#/$defs/n"}`, `{"c":[{"c":[]}]}`)
	f.Add(`{"anyOf":[{"$ref":"#"},{"type":"string"}]}`, `"x"`)
	f.Add(`{"if":{"required":["a"]},"then":{"properties":{"a":{"const":1}}},"else":false}`, `{"a":2}`)
	f.Add(`{"patternProperties":{"^x":{"$ref":"#"}},"dependentSchemas":{"a":{"$ref":"#"}}}`, `{"x":{"a":1}}`)
	f.Add(`{"prefixItems":[{"$ref":"#"}],"items":{"$ref":"#"},"contentMediaType":"application/json","contentSchema":{"$ref":"#"}}`, `[["[]"]]`)
	cs := NewContracts(64)
	f.Fuzz(func(t *testing.T, schema, content string) {
		body := chatBody(`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + schema + `}}`)
		req, err := ParseChatRequest(body)
		if err != nil || req.ResponseSchema == nil {
			return
		}
		ct, err := cs.Prepare(nil, &req)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Param != "response_format.json_schema.schema" {
				t.Fatalf("Prepare(%s) = %v; want a *RequestError for the schema", schema, err)
			}
			return
		}
		v := ct.CheckMessage(reply{content: &content}.body())
		if v.Result != "pass" && v.Result != "fail" {
			t.Fatalf("CheckMessage = %q", v)
		}
	})
}

// A long chain of same-value references inside a recursive schema is
// refused by the chain bound rather than analysed quadratically or
// validated exponentially. The cost is checked by counting the work the
// complexity check reports, not by timing it: a wall-clock bound fails on a
// loaded machine (it took 5-11 s under -race on a busy 2-core CI box) and
// passes on a fast one whatever the algorithm does.
func TestPrepareChainInCycle(t *testing.T) {
	var defs []string
	for i := range 800 {
		defs = append(defs, fmt.Sprintf(`"d%d":{"allOf":[{"$ref":"#/$defs/d%d"}],"properties":{"x":{"$ref":"#"}}}`, i, i+1))
	}
	defs = append(defs, `"d800":{}`)
	s := `{"$defs":{` + strings.Join(defs, ",") + `},"$ref":"#/$defs/d0"}`
	if len(s) > MaxRequestSchemaBytes {
		t.Fatalf("test schema is %d bytes", len(s))
	}
	req, err := ParseChatRequest(chatBody(`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + s + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	cs := NewContracts(4)
	_, err = cs.Prepare(nil, &req)
	var re *RequestError
	if !errors.As(err, &re) || !strings.Contains(re.Message, errSchemaChain.Error()) {
		t.Fatalf("Prepare(chain) = %v; want a *RequestError saying %q", err, errSchemaChain)
	}
	if n := cs.Stats().Compiles; n != 1 {
		t.Errorf("Prepare(chain) compiled %d times; want 1", n)
	}

	// The refusal comes from the chain bound, after a bounded amount of
	// work. Without the bound the closure of this chain alone is
	// 800*801/2 = 320400 entries and the blow-up check walks each of them,
	// so the budget below (the closure bound plus a linear pass over at most
	// maxSchemaNodes nodes and their edges) catches a quadratic analysis.
	compiled, err := configs.CompileSchema([]byte(s), "mem://test/chain.json")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := complexitySteps(compiled)
	if !errors.Is(err, errSchemaChain) {
		t.Fatalf("complexity check = %v; want %v", err, errSchemaChain)
	}
	if budget := maxClosureWork + maxSchemaExpansion + 4*maxSchemaNodes; steps > budget {
		t.Errorf("complexity check of a chain of 800 did %d steps; want at most %d", steps, budget)
	}
	t.Logf("complexity check of a chain of 800: %d steps, then %v", steps, err)
}
