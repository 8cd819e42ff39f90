package main

// Issue 14.5: GET /v1/models/{id} from the route table and POST
// /v1/completions passed through with routing, limits and capture.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func TestInteropModelsRetrieveAndCompletions(t *testing.T) {
	up := startCountingUpstream(t, 0)
	g := startInteropGateway(t, up.addr)
	c := sdkClient(g.api)
	ctx := context.Background()

	t.Run("models.retrieve", func(t *testing.T) {
		m, err := c.Models.Get(ctx, "chat")
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != "chat" || m.Object != "model" || m.OwnedBy != "cairn" || m.Created == 0 {
			t.Errorf("Models.Get(chat) = %+v; want the route as an OpenAI model object", m)
		}
		_, err = c.Models.Get(ctx, "no-such-model")
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
			t.Errorf("Models.Get(no-such-model) = %v; want 404 model_not_found", err)
		}
	})

	t.Run("completions", func(t *testing.T) {
		var raw *http.Response
		resp, err := c.Completions.New(ctx, openai.CompletionNewParams{
			Model:  "chat",
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Write to jane.doe@example.com about her refund")},
			User:   openai.String("legacy"),
		}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Choices) != 1 || resp.Choices[0].Text != "ok" || resp.Usage.TotalTokens != 4 {
			t.Errorf("completion = %+v; want the upstream's", resp)
		}
		if raw.Header.Get("x-cairn-target") != "up/up-model" || raw.Header.Get("x-cairn-provider-request-id") != "upreq-legacy" {
			t.Errorf("headers %v; want x-cairn-target and the provider request ID", raw.Header)
		}
		if up.received("legacy") != 1 {
			t.Errorf("upstream received %d completions; want 1", up.received("legacy"))
		}
		rec := waitRecord(t, g.admin, raw.Header.Get("x-request-id"))
		b := recordJSON(rec)
		if rec["endpoint"] != "completions" || rec["route"] != "chat" || rec["model"] != "up-model" {
			t.Errorf("record endpoint %v route %v model %v; want completions chat up-model", rec["endpoint"], rec["route"], rec["model"])
		}
		if u, _ := rec["usage"].(map[string]any); u == nil || u["total_tokens"] != float64(4) {
			t.Errorf("record usage = %v; want total_tokens 4", rec["usage"])
		}
		if strings.Contains(b, "jane.doe@example.com") || !strings.Contains(b, "[EMAIL]") {
			t.Errorf("record prompt not masked: %s", b)
		}

		s := c.Completions.NewStreaming(ctx, openai.CompletionNewParams{
			Model:  "chat",
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")},
			User:   openai.String("legacy-stream"),
		}, option.WithResponseInto(&raw))
		var text string
		for s.Next() {
			if ch := s.Current(); len(ch.Choices) > 0 {
				text += ch.Choices[0].Text
			}
		}
		if err := s.Err(); err != nil || text != "ok" {
			t.Errorf("streamed completion %q, %v; want ok", text, err)
		}
		rec = waitRecord(t, g.admin, raw.Header.Get("x-request-id"))
		if u, _ := rec["usage"].(map[string]any); u == nil || u["total_tokens"] != float64(5) {
			t.Errorf("streamed record usage = %v; want total_tokens 5", rec["usage"])
		}
		if r, _ := rec["response"].(map[string]any); r == nil || r["content"] != "ok" {
			t.Errorf("streamed record response = %v; want content ok", rec["response"])
		}
	})

	t.Run("bad completions body", func(t *testing.T) {
		r := postJSON(g.api+"/v1/completions", `{"model":"chat"}`)
		if r.status != 400 || !strings.Contains(string(r.body), `"param":"prompt"`) {
			t.Errorf("no prompt: %d %s; want 400 on prompt", r.status, r.body)
		}
	})
}
