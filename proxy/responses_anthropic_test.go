package proxy

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/loadtest"
)

// /v1/responses to a kind: anthropic provider, through the mock's
// Messages API (issue 19).

const antTools = `,"tools":[{"type":"function","name":"refund","description":"Refund an order","parameters":{"type":"object","properties":{"order":{"type":"integer"}},"required":["order"]}}],"tool_choice":"required"`

func antResponsesBody(model, extra string) string {
	return `{"model":"` + model + `","instructions":"Be kind.","input":[{"role":"user","content":[{"type":"input_text","text":"hello"}]}]` + extra + `}`
}

// TestAnthropicResponsesPlain: a Responses request reaches the provider
// as a Messages request (the route's prompt and the instructions as
// system, the provider's default max_tokens) and its answer comes back
// as a Responses object with usage; nothing is stored, so the response
// cannot be fetched or continued later.
func TestAnthropicResponsesPlain(t *testing.T) {
	s := startKindStack(t)
	r := do(t, "POST", s.tg.api+"/v1/responses", "", antResponsesBody("claude-bot", ""))
	if r.status != 200 || gjson.GetBytes(r.body, "object").Str != "response" {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	res := gjson.GetManyBytes(r.body, "status", "output.0.type", "output.0.content.0.type", "output.0.content.0.text", "usage.input_tokens", "usage.total_tokens", "id")
	if res[0].Str != "completed" || res[1].Str != "message" || res[2].Str != "output_text" || res[3].Str == "" || res[4].Int() == 0 || res[5].Int() == 0 {
		t.Errorf("response = %s", r.body)
	}
	if p := s.ant.LastPath(); p != "/v1/messages" {
		t.Errorf("path = %q; want /v1/messages", p)
	}
	_, body := s.ant.LastRequest()
	up := gjson.GetManyBytes(body, "model", "max_tokens", "system", "messages.0.role", "messages.0.content.0.text", "store", "input")
	if up[0].Str != "claude-sonnet-4-5" || up[1].Int() != 777 || !strings.Contains(up[2].Str, "You are terse.") || !strings.Contains(up[2].Str, "Be kind.") ||
		up[3].Str != "user" || up[4].Str != "hello" || up[5].Exists() || up[6].Exists() {
		t.Errorf("translated request = %s", body)
	}
	rec := s.tg.records(t, 1)[0]
	if rec.Usage.TotalTokens == 0 || gjson.GetBytes(rec.Response, "content").Str != res[3].Str || gjson.GetBytes(rec.Response, "finish_reason").Str != "stop" {
		t.Errorf("record usage %+v response %s; want the translated usage and answer", rec.Usage, rec.Response)
	}
	id := res[6].Str
	if g := do(t, "GET", s.tg.api+"/v1/responses/"+id, "", ""); g.status != 404 {
		t.Errorf("GET /v1/responses/%s = %d %s; want 404 (Anthropic keeps nothing)", id, g.status, g.body)
	}
	n := s.ant.Requests()
	c := do(t, "POST", s.tg.api+"/v1/responses", "", antResponsesBody("claude-bot", `,"previous_response_id":"`+id+`"`))
	if c.status != 404 || gjson.GetBytes(c.body, "error.param").Str != "previous_response_id" {
		t.Errorf("continuing %s = %d %s; want a 404 naming previous_response_id", id, c.status, c.body)
	}
	if s.ant.Requests() != n {
		t.Errorf("the continuation reached the provider")
	}
}

// TestAnthropicResponsesFunctionCall: tools translate, and a tool_use
// answer is a function_call item the client can answer with a
// function_call_output, which reaches the provider as a tool_result.
func TestAnthropicResponsesFunctionCall(t *testing.T) {
	s := startKindStack(t)
	r := do(t, "POST", s.tg.api+"/v1/responses", "", antResponsesBody("claude-bot", antTools))
	res := gjson.GetManyBytes(r.body, "output.#(type==\"function_call\").call_id", "output.#(type==\"function_call\").name", "output.#(type==\"function_call\").arguments")
	if r.status != 200 || !strings.HasPrefix(res[0].Str, "toolu_") || res[1].Str != "refund" || !gjson.Valid(res[2].Str) {
		t.Fatalf("status %d: %s; want a function_call item", r.status, r.body)
	}
	_, body := s.ant.LastRequest()
	if gjson.GetBytes(body, "tools.0.name").Str != "refund" || gjson.GetBytes(body, "tool_choice.type").Str != "any" || !gjson.GetBytes(body, "tools.0.input_schema.properties.order").Exists() {
		t.Errorf("translated tools = %s", body)
	}
	next := `{"model":"claude-bot","input":[{"role":"user","content":"hello"},` +
		`{"type":"function_call","call_id":"` + res[0].Str + `","name":"refund","arguments":` + res[2].Raw + `},` +
		`{"type":"function_call_output","call_id":"` + res[0].Str + `","output":"refunded"}]}`
	r = do(t, "POST", s.tg.api+"/v1/responses", "", next)
	if r.status != 200 {
		t.Fatalf("tool result turn: %d %s", r.status, r.body)
	}
	_, body = s.ant.LastRequest()
	m := gjson.GetManyBytes(body, "messages.1.role", "messages.1.content.0.type", "messages.1.content.0.id", "messages.2.role", "messages.2.content.0.type", "messages.2.content.0.tool_use_id", "messages.2.content.0.content")
	if m[0].Str != "assistant" || m[1].Str != "tool_use" || m[2].Str != res[0].Str || m[3].Str != "user" || m[4].Str != "tool_result" || m[5].Str != res[0].Str || m[6].Str != "refunded" {
		t.Errorf("translated conversation = %s", body)
	}
}

// TestAnthropicResponsesStream: a streamed answer is a typed Responses
// event stream (event: lines, response.created first, response.completed
// last with usage, no [DONE]), for text and for a function call, and the
// record holds what was said.
func TestAnthropicResponsesStream(t *testing.T) {
	s := startKindStack(t)
	for i, extra := range []string{`,"stream":true`, `,"stream":true` + antTools} {
		r := do(t, "POST", s.tg.api+"/v1/responses", "", antResponsesBody("claude-bot", extra))
		out := string(r.body)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("content-type"), "text/event-stream") {
			t.Fatalf("%s: %d %s", extra, r.status, out)
		}
		if !strings.HasPrefix(out, "event: response.created\n") || strings.Contains(out, "[DONE]") || !strings.Contains(out, "event: response.completed\n") {
			t.Errorf("%s: stream = %s", extra, out)
		}
		var completed, text string
		for _, line := range strings.Split(out, "\n") {
			d, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			if !gjson.Valid(d) {
				t.Errorf("event is not JSON: %s", d)
			}
			switch gjson.Get(d, "type").Str {
			case "response.completed":
				completed = d
			case "response.output_text.delta":
				text += gjson.Get(d, "delta").Str
			}
		}
		if gjson.Get(completed, "response.usage.total_tokens").Int() == 0 {
			t.Errorf("%s: response.completed without usage: %s", extra, completed)
		}
		rec := s.tg.records(t, i+1)[i]
		if i == 0 {
			if text == "" || gjson.Get(completed, "response.output.0.content.0.text").Str != text || gjson.GetBytes(rec.Response, "content").Str != text {
				t.Errorf("text %q, completed %s, record %s", text, completed, rec.Response)
			}
		} else {
			if !strings.Contains(out, "event: response.function_call_arguments.delta\n") || gjson.Get(completed, "response.output.#(type==\"function_call\").name").Str != "refund" ||
				gjson.GetBytes(rec.Response, "tool_calls.0.name").Str != "refund" || gjson.GetBytes(rec.Response, "finish_reason").Str != "tool_calls" {
				t.Errorf("function call stream = %s; record %s", out, rec.Response)
			}
		}
		if rec.Usage.TotalTokens == 0 {
			t.Errorf("%s: record usage %+v", extra, rec.Usage)
		}
	}
}

// TestAnthropicResponsesUntranslatable: what Anthropic cannot keep or
// express is a 400 naming the parameter, and nothing reaches it.
func TestAnthropicResponsesUntranslatable(t *testing.T) {
	s := startKindStack(t)
	for _, tt := range []struct{ extra, param string }{
		{`,"store":true`, "store"},
		{`,"background":true`, "background"},
		{`,"reasoning":{"effort":"low"}`, "reasoning"},
		{`,"text":{"format":{"type":"json_object"}}`, "text.format"},
		{`,"tools":[{"type":"web_search"}]`, "tools[0].type"},
		{`,"include":["reasoning.encrypted_content"]`, "include"},
	} {
		r := do(t, "POST", s.tg.api+"/v1/responses", "", antResponsesBody("claude-bot", tt.extra))
		if r.status != 400 || gjson.GetBytes(r.body, "error.param").Str != tt.param || gjson.GetBytes(r.body, "error.type").Str != "invalid_request_error" {
			t.Errorf("%s: %d %s; want a 400 naming %s", tt.extra, r.status, r.body, tt.param)
		}
	}
	if n := s.ant.Requests(); n != 0 {
		t.Errorf("the provider got %d requests; want none", n)
	}
}

// TestAnthropicResponsesStreamErrorFailsOver: an overload error event
// before any content of a Responses stream is a failed attempt, and the
// fallback answers (nothing of the failed stream reaches the client).
func TestAnthropicResponsesStreamErrorFailsOver(t *testing.T) {
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n" +
			"event: ping\ndata: {\"type\":\"ping\"}\n\n" +
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
	})
	_, oaiAddr := startMock(t, loadtest.MockOptions{RequestIDPrefix: "oai"})
	cfg := `
data_dir: "{{DATA}}"
providers:
  - { name: claude, kind: anthropic, base_url: "http://` + up + `" }
  - { name: oai, base_url: "http://` + oaiAddr + `/v1" }
routes: [ { name: r, targets: [ { provider: claude, model: m } ], fallbacks: [ { provider: oai, model: gpt-4o-mini } ] } ]
`
	tg := startGateway(t, cfg, nil)
	r := do(t, "POST", tg.api+"/v1/responses", "", antResponsesBody("r", `,"stream":true`))
	out := string(r.body)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("x-cairn-target"), "oai/") || strings.Contains(out, "Overloaded") || strings.Count(out, "event: response.created") != 1 {
		t.Errorf("%d target %q: %s; want the fallback's stream only", r.status, r.header.Get("x-cairn-target"), out)
	}
	rec := tg.records(t, 1)[0]
	if len(rec.Attempts) != 2 || !strings.Contains(rec.Attempts[0].Error, "overloaded_error") {
		t.Errorf("attempts = %+v; want the overloaded stream recorded as a failed attempt", rec.Attempts)
	}
}
