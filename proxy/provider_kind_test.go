package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/loadtest"
)

const kindConfig = `
data_dir: "{{DATA}}"
providers:
  - { name: claude, kind: anthropic, base_url: "http://%ANT%", api_key_env: ANT_KEY, max_tokens: 777 }
  - { name: az, kind: azure, base_url: "http://%AZ%", api_key_env: AZ_KEY, api_version: 2024-10-21, deployments: { gpt-4o-mini: mini-prod } }
  - { name: az1, kind: azure, path_style: v1, base_url: "http://%AZ%", api_key_env: AZ_KEY }
  - { name: bad, kind: anthropic, base_url: "http://%BAD%" }
  - { name: oai, base_url: "http://%OAI%/v1" }
routes:
  - name: claude-bot
    prompt: { version: v1, system: "You are terse." }
    targets: [ { provider: claude, model: claude-sonnet-4-5 } ]
  - name: azure-bot
    targets: [ { provider: az, model: gpt-4o-mini } ]
  - name: azure-v1
    targets: [ { provider: az1, model: gpt-4o-mini } ]
  - name: garbled
    targets: [ { provider: bad, model: claude-x } ]
    fallbacks: [ { provider: oai, model: gpt-4o-mini } ]
`

type kindStack struct {
	tg           *testGateway
	ant, az, oai *loadtest.Mock
}

func startKindStack(t *testing.T) *kindStack {
	t.Helper()
	ant, antAddr := startMock(t, loadtest.MockOptions{APIKey: "sk-ant", RequestIDPrefix: "ant"})
	az, azAddr := startMock(t, loadtest.MockOptions{APIKey: "sk-az", RequestIDPrefix: "az"})
	oai, oaiAddr := startMock(t, loadtest.MockOptions{RequestIDPrefix: "oai"})
	// A provider that answers 200 with something that is not a message.
	ln := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"ok":true}`)
	})
	cfg := strings.NewReplacer("%ANT%", antAddr, "%AZ%", azAddr, "%OAI%", oaiAddr, "%BAD%", ln).Replace(kindConfig)
	tg := startGateway(t, cfg, map[string]string{"ANT_KEY": "sk-ant", "AZ_KEY": "sk-az"})
	return &kindStack{tg: tg, ant: ant, az: az, oai: oai}
}

// TestAnthropicWire: what reaches an anthropic provider is a Messages
// request (path, x-api-key, anthropic-version, system prompt from the
// route, the provider's default max_tokens) and no bearer key.
func TestAnthropicWire(t *testing.T) {
	s := startKindStack(t)
	r := do(t, "POST", s.tg.api+"/v1/chat/completions", "", chat("claude-bot", `"stop":"END"`))
	if r.status != 200 || gjson.GetBytes(r.body, "object").Str != "chat.completion" || !strings.HasPrefix(r.header.Get("x-cairn-provider-request-id"), "ant-") {
		t.Fatalf("status %d provider id %q: %s", r.status, r.header.Get("x-cairn-provider-request-id"), r.body)
	}
	h, body := s.ant.LastRequest()
	if p := s.ant.LastPath(); p != "/v1/messages" {
		t.Errorf("path = %q; want /v1/messages", p)
	}
	if h["x-api-key"] != "sk-ant" || h["anthropic-version"] != "2023-06-01" || h["authorization"] != "" {
		t.Errorf("headers = %v; want x-api-key, anthropic-version and no Authorization", h)
	}
	res := gjson.GetManyBytes(body, "model", "max_tokens", "system", "stop_sequences.0", "messages.0.content.0.text")
	if res[0].Str != "claude-sonnet-4-5" || res[1].Int() != 777 || res[2].Str != "You are terse." || res[3].Str != "END" || res[4].Str != "hello" {
		t.Errorf("translated request = %s", body)
	}
	recs := s.tg.records(t, 1)
	if recs[0].Usage.TotalTokens == 0 || recs[0].ProviderRequestID == "" {
		t.Errorf("record usage %+v provider id %q; want the translated usage and Anthropic's request-id", recs[0].Usage, recs[0].ProviderRequestID)
	}
}

// TestAnthropicRefusal: stop_reason refusal is a refusal for the refusal
// signal, plain and streamed.
func TestAnthropicRefusal(t *testing.T) {
	s := startKindStack(t)
	s.ant.SetFault("claude-sonnet-4-5", loadtest.Fault{Refuse: true, Variant: 1})
	r := do(t, "POST", s.tg.api+"/v1/chat/completions", "", chat("claude-bot", ""))
	if gjson.GetBytes(r.body, "choices.0.finish_reason").Str != "content_filter" {
		t.Fatalf("answer %s; want finish_reason content_filter", r.body)
	}
	r = do(t, "POST", s.tg.api+"/v1/chat/completions", "", chat("claude-bot", `"stream":true`))
	if !strings.Contains(string(r.body), `"finish_reason":"content_filter"`) || !strings.HasSuffix(string(r.body), "data: [DONE]\n\n") {
		t.Fatalf("stream %s; want content_filter and [DONE]", r.body)
	}
	for _, rec := range s.tg.records(t, 2) {
		if !rec.Refusal || rec.Outcome != "ok" {
			t.Errorf("record refusal %v outcome %q; want a refusal", rec.Refusal, rec.Outcome)
		}
	}
}

// TestAnthropicUntranslatable: a parameter the Messages API lacks is a
// 400 naming it, and nothing reaches the provider.
func TestAnthropicUntranslatable(t *testing.T) {
	s := startKindStack(t)
	for _, tt := range []struct{ extra, param string }{
		{`"n":3`, "n"}, {`"logprobs":true`, "logprobs"}, {`"response_format":{"type":"json_object"}`, "response_format"},
	} {
		r := do(t, "POST", s.tg.api+"/v1/chat/completions", "", chat("claude-bot", tt.extra))
		if r.status != 400 || gjson.GetBytes(r.body, "error.param").Str != tt.param || gjson.GetBytes(r.body, "error.type").Str != "invalid_request_error" {
			t.Errorf("%s: %d %s; want a 400 naming %s", tt.extra, r.status, r.body, tt.param)
		}
	}
	r := do(t, "POST", s.tg.api+"/v1/embeddings", "", `{"model":"claude-bot","input":"x"}`)
	if r.status != 400 {
		t.Errorf("embeddings on anthropic: %d %s; want 400", r.status, r.body)
	}
	if n := s.ant.Requests(); n != 0 {
		t.Errorf("the provider got %d requests; want none", n)
	}
}

// TestAnthropicNotMessageFailsOver: a 200 that is not a Messages API
// message is a bad upstream answer: the next target answers.
func TestAnthropicNotMessageFailsOver(t *testing.T) {
	s := startKindStack(t)
	for _, body := range []string{chat("garbled", ""), chat("garbled", `"stream":true`)} {
		r := do(t, "POST", s.tg.api+"/v1/chat/completions", "", body)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("x-cairn-target"), "oai/") {
			t.Errorf("%s: %d target %q: %s; want the fallback's answer", body, r.status, r.header.Get("x-cairn-target"), r.body)
		}
	}
	for _, rec := range s.tg.records(t, 2) {
		if len(rec.Attempts) != 2 || rec.Attempts[0].Error == "" {
			t.Errorf("attempts = %+v; want the garbled answer recorded as a failed attempt", rec.Attempts)
		}
	}
}

// TestAzureWire: both path styles, the deployment and api-version, the
// api-key header and no bearer key.
func TestAzureWire(t *testing.T) {
	s := startKindStack(t)
	for _, tt := range []struct{ route, path, query string }{
		{"azure-bot", "/openai/deployments/mini-prod/chat/completions", "api-version=2024-10-21"},
		{"azure-v1", "/openai/v1/chat/completions", ""},
	} {
		r := do(t, "POST", s.tg.api+"/v1/chat/completions", "", chat(tt.route, ""))
		if r.status != 200 || !strings.HasPrefix(r.header.Get("x-cairn-provider-request-id"), "az-") {
			t.Fatalf("%s: %d %q %s", tt.route, r.status, r.header.Get("x-cairn-provider-request-id"), r.body)
		}
		h, body := s.az.LastRequest()
		if p := s.az.LastPath(); p != tt.path {
			t.Errorf("%s: path %q; want %q", tt.route, p, tt.path)
		}
		if h["api-key"] != "sk-az" || h["authorization"] != "" {
			t.Errorf("%s: headers %v; want api-key and no Authorization", tt.route, h)
		}
		_ = body
	}
}

// TestAzureErrorShape: Azure's typeless errors reach the client in
// OpenAI's shape, with Azure's code kept.
func TestAzureErrorShape(t *testing.T) {
	s := startKindStack(t)
	s.az.SetFault("mini-prod", loadtest.Fault{Status: 404, ErrorCode: "DeploymentNotFound"})
	r := do(t, "POST", s.tg.api+"/v1/chat/completions", "", chat("azure-bot", ""))
	if r.status != 404 || gjson.GetBytes(r.body, "error.type").Str != "invalid_request_error" || r.errorCode() != "DeploymentNotFound" {
		t.Errorf("azure 404: %d %s; want OpenAI's shape with code DeploymentNotFound", r.status, r.body)
	}
}

// TestAnthropicSecretEcho: an anthropic provider echoing the gateway's
// key in an error, whole or in a stream's error event, never shows it to
// the client.
func TestAnthropicSecretEcho(t *testing.T) {
	const key = "sk-ant-secret-key-0123456789"
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if gjson.GetBytes(ctx.PostBody(), "stream").Bool() {
			ctx.SetContentType("text/event-stream")
			delta := "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
			if gjson.GetBytes(ctx.PostBody(), "metadata.user_id").Str == "early" {
				delta = "" // the error comes before any content
			}
			ctx.SetBodyString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n" + delta +
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"key " + key + " broke\"}}\n\n")
			return
		}
		ctx.SetStatusCode(401)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key ` + key + `"}}`)
	})
	cfg := `
data_dir: "{{DATA}}"
providers: [ { name: claude, kind: anthropic, base_url: "http://` + up + `", api_key_env: ANT_KEY } ]
routes: [ { name: r, targets: [ { provider: claude, model: m } ] } ]
`
	tg := startGateway(t, cfg, map[string]string{"ANT_KEY": key})
	r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("r", ""))
	if r.status != 401 || strings.Contains(string(r.body), key) || gjson.GetBytes(r.body, "error.code").Str != "invalid_api_key" {
		t.Errorf("401: %d %s; want OpenAI's shape without the key", r.status, r.body)
	}
	r = do(t, "POST", tg.api+"/v1/chat/completions", "", chat("r", `"stream":true`))
	if strings.Contains(string(r.body), key) || !strings.Contains(string(r.body), `"code":"api_error"`) {
		t.Errorf("stream: %s; want the error event without the key", r.body)
	}
	r = do(t, "POST", tg.api+"/v1/chat/completions", "", chat("r", `"stream":true,"user":"early"`))
	if r.status != 502 || strings.Contains(string(r.body), key) || !strings.Contains(string(r.body), "api_error") {
		t.Errorf("stream erring before content: %d %s; want a 502 without the key", r.status, r.body)
	}
	for _, rec := range tg.records(t, 3) {
		b, _ := json.Marshal(rec)
		if strings.Contains(string(b), key) {
			t.Errorf("record holds the key: %s", b)
		}
	}
}

// TestAnthropicStreamErrorFailsOver: Anthropic reports overload as an
// error event inside a 200 stream; before any chunk reached the client
// that is a failed attempt, and the next target answers.
func TestAnthropicStreamErrorFailsOver(t *testing.T) {
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
	r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("r", `"stream":true`))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("x-cairn-target"), "oai/") || strings.Contains(string(r.body), "Overloaded") {
		t.Errorf("%d target %q: %s; want the fallback's stream", r.status, r.header.Get("x-cairn-target"), r.body)
	}
	rec := tg.records(t, 1)[0]
	if len(rec.Attempts) != 2 || !strings.Contains(rec.Attempts[0].Error, "overloaded_error") {
		t.Errorf("attempts = %+v; want the overloaded stream recorded as a failed attempt", rec.Attempts)
	}
}
