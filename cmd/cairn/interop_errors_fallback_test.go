package main

// Issue 14.3 and 14.4, the variants with a fallback and a hostile stream:
// when the routed target and its fallback both fail, the client and the
// record name the fallback whose answer was relayed (provider, model and
// target agree); a stream's first-event id too long to be a request ID is
// not used as one.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

const interopFallbackConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
release: "interop"
providers:
  - { name: up, base_url: "http://%[4]s/v1", api_key_env: INTEROP_PROVIDER_KEY, timeout: 5s }
routes:
  - name: chat
    targets: [ { provider: up, model: primary-model } ]
    fallbacks: [ { provider: up, model: fallback-model } ]
`

func TestInteropUpstreamErrorsWithFallback(t *testing.T) {
	up := startCountingUpstream(t, 0)
	var mu sync.Mutex
	calls := map[string]int{}
	longID := strings.Repeat("x", 4096)
	up.set(func(w http.ResponseWriter, user string) bool {
		mu.Lock()
		calls[user]++
		n := calls[user]
		mu.Unlock()
		h := w.Header()
		switch {
		case strings.HasPrefix(user, "both-fail"):
			h.Set("content-type", "application/json")
			h.Set("x-request-id", fmt.Sprintf("upreq-%s-%d", user, n))
			if n == 1 { // the routed target
				w.WriteHeader(503)
				_, _ = w.Write([]byte(`{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}`))
				return true
			}
			h.Set("retry-after", "2")
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`))
			return true
		case user == "long-id":
			h.Set("content-type", "text/event-stream")
			fmt.Fprintf(w, "data: {\"id\":%q,\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hello\"},\"finish_reason\":\"stop\"}]}\n\n", longID)
			fmt.Fprint(w, "data: [DONE]\n\n")
			return true
		}
		return false
	}, true)
	cfg := strings.ReplaceAll(interopFallbackConfig, "%[4]s", up.addr)
	g := startRelGateway(t, cfg, relEnv("INTEROP_PROVIDER_KEY=sk-interop-provider-secret"))
	c := sdkClient(g.api)
	params := func(user string) openai.ChatCompletionNewParams {
		return openai.ChatCompletionNewParams{
			Model:    "chat",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			User:     openai.String(user),
		}
	}

	t.Run("routed target 503, fallback 429", func(t *testing.T) {
		_, err := c.Chat.Completions.New(context.Background(), params("both-fail"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("err = %v; want an *openai.Error", err)
		}
		h := apiErr.Response.Header
		if apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || h.Get("retry-after") != "2" {
			t.Errorf("status %d code %q retry-after %q; want the fallback's 429 rate_limit_exceeded, retry-after 2", apiErr.StatusCode, apiErr.Code, h.Get("retry-after"))
		}
		if got := h.Get("x-cairn-target"); got != "up/fallback-model" {
			t.Errorf("x-cairn-target = %q; want up/fallback-model, whose answer this is", got)
		}
		if got := h.Get("x-cairn-provider-request-id"); got != "upreq-both-fail-2" {
			t.Errorf("x-cairn-provider-request-id = %q; want the fallback's upreq-both-fail-2", got)
		}
		rec := waitRecord(t, g.admin, h.Get("x-request-id"))
		if rec["provider"] != "up" || rec["model"] != "fallback-model" || rec["target"] != "up/fallback-model" || rec["provider_request_id"] != "upreq-both-fail-2" {
			t.Errorf("record provider %v model %v target %v provider_request_id %v; want up, fallback-model, up/fallback-model, upreq-both-fail-2 (one target, not a mix)",
				rec["provider"], rec["model"], rec["target"], rec["provider_request_id"])
		}
		if a, _ := rec["attempts"].([]any); len(a) != 2 {
			t.Errorf("record attempts = %v; want both", rec["attempts"])
		}
	})

	t.Run("stream whose first event id is 4 KiB", func(t *testing.T) {
		var raw *http.Response
		s := c.Chat.Completions.NewStreaming(context.Background(), params("long-id"), option.WithResponseInto(&raw))
		for s.Next() {
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if got := raw.Header.Get("x-cairn-provider-request-id"); got != "" {
			t.Errorf("x-cairn-provider-request-id is %d bytes; want none (a 4 KiB id is no request ID)", len(got))
		}
		rec := waitRecord(t, g.admin, raw.Header.Get("x-request-id"))
		if id, _ := rec["provider_request_id"].(string); len(id) > 256 {
			t.Errorf("record provider_request_id is %d bytes; want none", len(id))
		}
	})
}
