package loadtest

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/schema"
	"github.com/cairnhq/cairn/schema/anthropic"
)

const anthropicBody = `{"model":"claude-x","max_tokens":100,"system":"be brief","messages":[{"role":"user","content":"hi"}]%s}`

func TestMockAnthropicMessages(t *testing.T) {
	m, url := startMock(t, MockOptions{APIKey: "sk-ant", RequestIDPrefix: "ant"})
	hdr := []string{"x-api-key", "sk-ant", "anthropic-version", "2023-06-01"}
	body := func(extra string) string { return strings.Replace(anthropicBody, "%s", extra, 1) }

	t.Run("plain", func(t *testing.T) {
		r := post(t, "POST", url+"/v1/messages", body(""), hdr...)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("request-id"), "ant-") || r.header.Get("x-request-id") != "" {
			t.Fatalf("status %d request-id %q x-request-id %q: %s", r.status, r.header.Get("request-id"), r.header.Get("x-request-id"), r.body)
		}
		out, err := anthropic.AppendResponse(nil, r.body, 1)
		if err != nil || gjson.GetBytes(out, "choices.0.message.content").Str != DefaultMockContent ||
			gjson.GetBytes(out, "choices.0.finish_reason").Str != "stop" || gjson.GetBytes(out, "usage.total_tokens").Int() == 0 {
			t.Errorf("translated answer %s (%v); want the mock's content, stop, usage", out, err)
		}
	})
	t.Run("streamed tool call", func(t *testing.T) {
		tools := `,"stream":true,"tools":[{"name":"refund","input_schema":{"type":"object","properties":{"order":{"type":"integer"}},"required":["order"]}}],"tool_choice":{"type":"any"}`
		r := post(t, "POST", url+"/v1/messages", body(tools), hdr...)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("content-type"), "text/event-stream") {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var s anthropic.Stream
		s.Reset(1, true)
		var acc schema.StreamAccumulator
		var p schema.SSEParser
		done := false
		err := p.Feed(r.body, func(ev schema.Event) error {
			return s.Event(ev.Data, func(o schema.Event) error {
				if o.Done {
					done = true
				} else {
					acc.Add(o.Data)
				}
				return nil
			})
		})
		tcs := acc.ToolCalls()
		if err != nil || !done || acc.FinishReason() != "tool_calls" || len(tcs) != 1 || tcs[0].Name != "refund" || !gjson.Valid(tcs[0].Arguments) {
			t.Errorf("translated stream: err %v done %v finish %q calls %+v\n%s", err, done, acc.FinishReason(), tcs, r.body)
		}
	})
	t.Run("errors in Anthropic's shape", func(t *testing.T) {
		for _, tt := range []struct {
			name, body string
			hdr        []string
			status     int
			typ        string
		}{
			{"bad key", body(""), []string{"x-api-key", "no", "anthropic-version", "2023-06-01"}, 401, "authentication_error"},
			{"no version", body(""), []string{"x-api-key", "sk-ant"}, 400, "invalid_request_error"},
			{"no max_tokens", `{"model":"m","messages":[]}`, hdr, 400, "invalid_request_error"},
		} {
			r := post(t, "POST", url+"/v1/messages", tt.body, tt.hdr...)
			if r.status != tt.status || gjson.GetBytes(r.body, "type").Str != "error" || gjson.GetBytes(r.body, "error.type").Str != tt.typ {
				t.Errorf("%s: %d %s; want %d %s", tt.name, r.status, r.body, tt.status, tt.typ)
			}
		}
	})
	t.Run("fault", func(t *testing.T) {
		m.SetFault("claude-x", Fault{Status: 529})
		defer m.ClearFaults()
		r := post(t, "POST", url+"/v1/messages", body(""), hdr...)
		if r.status != 529 || gjson.GetBytes(r.body, "error.type").Str != "overloaded_error" || r.header.Get("retry-after") == "" {
			t.Errorf("fault 529: %d %v %s; want overloaded_error with retry-after", r.status, r.header, r.body)
		}
	})
}

func TestMockAzure(t *testing.T) {
	m, url := startMock(t, MockOptions{APIKey: "sk-az", RequestIDPrefix: "az"})
	hdr := []string{"api-key", "sk-az"}
	chat := `{"model":"ignored","messages":[{"role":"user","content":"hi"}]}`
	t.Run("classic path names the model by deployment", func(t *testing.T) {
		r := post(t, "POST", url+"/openai/deployments/mini-prod/chat/completions?api-version=2024-10-21", chat, hdr...)
		if r.status != 200 || gjson.GetBytes(r.body, "model").Str != "mini-prod" || !strings.HasPrefix(r.header.Get("apim-request-id"), "az-") {
			t.Errorf("status %d apim-request-id %q: %s", r.status, r.header.Get("apim-request-id"), r.body)
		}
	})
	t.Run("v1 path", func(t *testing.T) {
		r := post(t, "POST", url+"/openai/v1/chat/completions", chat, hdr...)
		if r.status != 200 || gjson.GetBytes(r.body, "model").Str != "ignored" {
			t.Errorf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("errors in Azure's shape", func(t *testing.T) {
		for _, tt := range []struct {
			name, path string
			hdr        []string
			status     int
		}{
			{"no api-version", "/openai/deployments/d/chat/completions", hdr, 404},
			{"bearer is not the azure key", "/openai/v1/chat/completions", []string{"Authorization", "Bearer sk-az"}, 401},
			{"unknown path", "/openai/other", hdr, 404},
		} {
			r := post(t, "POST", url+tt.path, chat, tt.hdr...)
			if r.status != tt.status || gjson.GetBytes(r.body, "error.type").Exists() || gjson.GetBytes(r.body, "error.code").Str == "" {
				t.Errorf("%s: %d %s; want %d with Azure's error shape (code, no type)", tt.name, r.status, r.body, tt.status)
			}
		}
	})
	t.Run("content filter", func(t *testing.T) {
		m.SetFault("d", Fault{Status: 400, ErrorCode: "content_filter"})
		defer m.ClearFaults()
		r := post(t, "POST", url+"/openai/deployments/d/chat/completions?api-version=1", chat, hdr...)
		if r.status != 400 || gjson.GetBytes(r.body, "error.code").Str != "content_filter" ||
			!gjson.GetBytes(r.body, "error.innererror.content_filter_result.hate.filtered").Bool() {
			t.Errorf("content filter: %d %s", r.status, r.body)
		}
	})
}
