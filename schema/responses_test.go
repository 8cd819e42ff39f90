package schema

import (
	"strings"
	"testing"
)

func TestParseResponsesRequest(t *testing.T) {
	body := []byte(`{"model":"agent","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]},{"type":"function_call_output","call_id":"c1","output":"{}"}],` +
		`"instructions":"Be brief.","stream":true,"user":"u1","previous_response_id":"resp_abc-1",` +
		`"text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object"}}},` +
		`"tools":[{"type":"function","name":"f","parameters":{"type":"object"}},{"type":"web_search"}],"tool_choice":{"type":"function","name":"f"},` +
		`"parallel_tool_calls":false,"temperature":0.5,"max_output_tokens":100,"store":true}`)
	r, err := ParseResponsesRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "agent" || !r.Stream || r.User != "u1" || r.PreviousResponseID() != "resp_abc-1" || r.ResponseFormat != "json_schema" ||
		string(r.ResponseSchema) != `{"type":"object"}` || r.ToolCount != 2 || r.ToolChoice == nil || r.ParallelToolCalls == nil ||
		!r.HasTemperature || r.MaxTokens != 100 || r.MessageCount != 2 {
		t.Fatalf("ParseResponsesRequest = %+v", r)
	}
	c, err := NewContracts(16).Prepare(nil, &r)
	if err != nil || c.Empty() || c.choice != choiceNamed || c.choiceName != "f" || !c.noParallel {
		t.Fatalf("Prepare = %+v, %v", c, err)
	}
}

func TestParseResponsesRequestErrors(t *testing.T) {
	for _, tc := range []struct{ body, param string }{
		{`{"input":"x"}`, "model"},
		{`{"model":"a","model":"b","input":"x"}`, "model"},
		{`{"model":"a","input":"x","input":"y"}`, "input"},
		{`{"model":"a","input":[{"type":"message","type":"x"}]}`, "input[0].type"},
		{`{"model":"a","input":[1]}`, "input[0]"},
		{`{"model":"a","input":true}`, "input"},
		{`{"model":"a","input":"x","instructions":1}`, "instructions"},
		{`{"model":"a","input":"x","temperature":1e999}`, "temperature"},
		{`{"model":"a","input":"x","top_p":2}`, "top_p"},
		{`{"model":"a","input":"x","max_output_tokens":-1}`, "max_output_tokens"},
		{`{"model":"a","input":"x","previous_response_id":"resp/../x"}`, "previous_response_id"},
		{`{"model":"a","input":"x","text":{"format":{"type":"yaml"}}}`, "text.format.type"},
		{`{"model":"a","input":"x","text":{"format":{"type":"json_schema","name":"n"}}}`, "text.format.schema"},
		{`{"model":"a","input":"x","tools":[{"type":"function","name":""}]}`, "tools[0].name"},
		{`{"model":"a","input":"x","tools":[{"type":"function","name":"f","name":"g"}]}`, "tools[0].name"},
		{`{"model":"a","input":"x","tool_choice":"auto"}`, "tool_choice"},
		{`{"model":"a","input":"x","conversation":"conv_1"}`, "conversation"},
		{`{"model":"a","input":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, ""},
	} {
		_, err := ParseResponsesRequest([]byte(tc.body))
		re, ok := err.(*RequestError)
		if !ok || re.Param != tc.param {
			t.Errorf("ParseResponsesRequest(%.80s) = %v; want an error naming %q", tc.body, err, tc.param)
		}
	}
}

func TestRewriteResponses(t *testing.T) {
	for _, tc := range []struct{ name, body, model, prompt, want string }{
		{"unchanged", `{"model":"a","input":"x"}`, "", "", `{"model":"a","input":"x"}`},
		{"model", `{"model":"a","input":"x"}`, "gpt-4o", "", `{"model":"gpt-4o","input":"x"}`},
		{"prompt without instructions", `{"model":"a","input":"x"}`, "", "Be \"exact\".", `{"instructions":"Be \"exact\".","model":"a","input":"x"}`},
		{"prompt before the client's", `{"input":"x","instructions":"Use French.\n","model":"a"}`, "m", "Be exact.",
			`{"input":"x","instructions":"Be exact.\n\nUse French.\n","model":"m"}`},
		{"null instructions", ` {"model":"a","instructions":null,"input":"x"}`, "", "P", ` {"model":"a","instructions":"P","input":"x"}`},
		{"escapes kept", `{"model":"a","instructions":"\u00e9\"q\"","input":"x"}`, "", "P", `{"model":"a","instructions":"P\n\né\"q\"","input":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseResponsesRequest([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.RewriteResponses(nil, []byte(tc.body), tc.model, tc.prompt)
			if err != nil || string(got) != tc.want {
				t.Errorf("RewriteResponses = %s, %v; want %s", got, err, tc.want)
			}
			if _, err := ParseResponsesRequest(got); err != nil {
				t.Errorf("rewritten body does not parse: %v", err)
			}
		})
	}
}

func TestResponsesAccumulator(t *testing.T) {
	events := []string{
		`{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","model":"gpt-4o","status":"in_progress","output":[],"usage":null}}`,
		`{"type":"response.output_item.added","output_index":0,"item":{"type":"message","id":"msg_1","content":[]}}`,
		`{"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"{\"a\":"}`,
		`{"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"1}"}`,
		`{"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":""}}`,
		`{"type":"response.function_call_arguments.delta","output_index":1,"delta":"{\"x\""}`,
		`{"type":"response.function_call_arguments.delta","output_index":1,"delta":":2}"}`,
		`{"type":"response.function_call_arguments.done","output_index":1,"arguments":"{\"x\":2}"}`,
		`{"type":"response.output_item.added","output_index":2,"item":{"type":"function_call","call_id":"call_2","name":"g","arguments":""}}`,
		`{"type":"response.function_call_arguments.done","output_index":2,"arguments":"{}"}`,
		`{"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12,"input_tokens_details":{"cached_tokens":2}}}}`,
	}
	var a StreamAccumulator
	a.ForResponses()
	for _, e := range events {
		a.Add([]byte(e))
	}
	u, ok := a.Usage()
	calls := a.ToolCalls()
	if a.ID() != "resp_1" || a.Model() != "gpt-4o" || a.Content() != `{"a":1}` || a.FinishReason() != "tool_calls" || !ok ||
		u != (Usage{PromptTokens: 5, CompletionTokens: 7, TotalTokens: 12, CachedTokens: 2}) || len(calls) != 2 ||
		calls[0] != (ToolCall{Index: 1, ID: "call_1", Type: "function", Name: "f", Arguments: `{"x":2}`}) || calls[1].Arguments != "{}" {
		t.Fatalf("accumulated id %q model %q content %q finish %q usage %+v calls %+v", a.ID(), a.Model(), a.Content(), a.FinishReason(), u, calls)
	}

	var e StreamAccumulator
	e.ForResponses()
	e.Add([]byte(`{"type":"error","code":"server_error","message":"boom","sequence_number":3}`))
	if e.Err() == nil || e.FinishReason() != "error" {
		t.Errorf("error event: err %s finish %q", e.Err(), e.FinishReason())
	}
	var f StreamAccumulator
	f.ForResponses()
	f.Add([]byte(`{"type":"response.failed","response":{"id":"resp_2","status":"failed","error":{"code":"server_error","message":"x"}}}`))
	if string(f.Err()) != `{"code":"server_error","message":"x"}` || f.FinishReason() != "error" {
		t.Errorf("failed: err %s finish %q", f.Err(), f.FinishReason())
	}
}

func TestResponsesBodyContract(t *testing.T) {
	body := []byte(`{"id":"resp_1","object":"response","status":"completed","output":[` +
		`{"type":"reasoning","id":"rs_1","summary":[]},` +
		`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"{\"answer\":"},{"type":"output_text","text":"\"ok\"}"}]}],` +
		`"usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7}}`)
	req, err := ParseResponsesRequest([]byte(`{"model":"a","input":"x","text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object","required":["answer"]}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewContracts(4).Prepare(nil, &req)
	if err != nil {
		t.Fatal(err)
	}
	var a StreamAccumulator
	a.ForResponses()
	a.AddResponseBody(body)
	if v := c.CheckStream(&a); v.Result != ResultPass || a.Content() != `{"answer":"ok"}` || a.FinishReason() != "stop" {
		t.Errorf("verdict %+v content %q finish %q", v, a.Content(), a.FinishReason())
	}
	if u, ok := ReadUsage(body); !ok || u.TotalTokens != 7 || u.PromptTokens != 3 {
		t.Errorf("ReadUsage = %+v, %v", u, ok)
	}
	var bad StreamAccumulator
	bad.ForResponses()
	bad.AddResponseBody([]byte(`{"id":"resp_2","status":"incomplete","output":[{"type":"message","content":[{"type":"output_text","text":"{\"answ"}]}]}`))
	if v := c.CheckStream(&bad); v.Result != ResultFail || bad.FinishReason() != "length" {
		t.Errorf("incomplete: verdict %+v finish %q", v, bad.FinishReason())
	}
}

func TestResponsesEventType(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"response.created","x":1}`: "response.created",
		`{"x":1,"type":"response.created"}`: "",
		`{"type":"a\nb"}`:                   "",
		`{"type":"unterminated`:             "",
	} {
		if got := string(ResponsesEventType([]byte(in))); got != want {
			t.Errorf("ResponsesEventType(%q) = %q; want %q", in, got, want)
		}
	}
}
