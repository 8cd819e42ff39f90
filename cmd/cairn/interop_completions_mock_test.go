package main

// Issue 14.5 with the quick start's own upstream: `cairn mock-provider`
// answered POST /v1/completions with 404 "unknown path", so a new user's
// first legacy completion through the gateway looked like the gateway
// lacked the endpoint. The real binary and the real mock; the completion
// is routed, limited by the key's RPM and captured.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

const completionsMockConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
providers:
  - { name: mock, base_url: "http://%[4]s/v1", timeout: 5s }
keys:
  - { name: app, key_env: COMPL_APP_KEY, rpm: 3 }
routes:
  - { name: legacy, targets: [ { provider: mock, model: gpt-3.5-turbo-instruct } ] }
`

func TestInteropCompletionsThroughMockProvider(t *testing.T) {
	mock := startMockProc(t, "cmpl")
	g := startRelGateway(t, fmt.Sprintf(completionsMockConfig, "%[1]s", "%[2]s", "%[3]s", mock), relEnv("COMPL_APP_KEY=app-key"))
	c := openai.NewClient(option.WithBaseURL(g.api+"/v1"), option.WithAPIKey("app-key"), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.CompletionNewParams{
		Model:  "legacy",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Say hello")},
		User:   openai.String("legacy-user"),
	}

	var raw *http.Response
	resp, err := c.Completions.New(ctx, params, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatalf("completions through the mock: %v", err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Text == "" || resp.Usage.TotalTokens == 0 || resp.Object != "text_completion" {
		t.Errorf("completion = %+v; want the mock's text_completion with usage", resp)
	}
	if got := raw.Header.Get("x-cairn-provider-request-id"); !strings.HasPrefix(got, "cmpl-") {
		t.Errorf("x-cairn-provider-request-id = %q; want the mock's cmpl-N", got)
	}
	rec := waitRecord(t, g.admin, raw.Header.Get("x-request-id"))
	if rec["endpoint"] != "completions" || rec["route"] != "legacy" || rec["key"] != "app" || rec["status"] != float64(200) {
		t.Errorf("record endpoint %v route %v key %v status %v; want completions legacy app 200", rec["endpoint"], rec["route"], rec["key"], rec["status"])
	}

	s := c.Completions.NewStreaming(ctx, params, option.WithResponseInto(&raw))
	var text string
	for s.Next() {
		if ch := s.Current(); len(ch.Choices) > 0 {
			text += ch.Choices[0].Text
		}
	}
	if err := s.Err(); err != nil || text == "" {
		t.Errorf("streamed completion %q, %v; want the mock's text", text, err)
	}
	rec = waitRecord(t, g.admin, raw.Header.Get("x-request-id"))
	if u, _ := rec["usage"].(map[string]any); u == nil || u["total_tokens"] == float64(0) {
		t.Errorf("streamed record usage = %v; want the mock's usage (the gateway asks for it)", rec["usage"])
	}

	// The key's RPM (3) holds on this endpoint too.
	if _, err := c.Completions.New(ctx, params); err != nil {
		t.Fatalf("third completion: %v", err)
	}
	_, err = c.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || apiErr.Response.Header.Get("retry-after") == "" {
		t.Errorf("fourth completion within a minute: %v; want the key's 429 rate_limit_exceeded with retry-after", err)
	}
}
