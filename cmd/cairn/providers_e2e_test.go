package main

// End-to-end for the provider kinds (issue 19): the real binary, mock
// providers speaking OpenAI, Anthropic and Azure OpenAI as separate
// processes, and the official OpenAI Go SDK as the client.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

const providersConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
release: "e2e"
providers:
  - { name: oai, base_url: "http://%[4]s/v1", api_key_env: E2E_OAI_KEY, timeout: 5s }
  - { name: claude, kind: anthropic, base_url: "http://%[5]s", api_key_env: E2E_ANT_KEY, timeout: 5s, max_tokens: 1024 }
  - { name: az, kind: azure, base_url: "http://%[6]s", api_key_env: E2E_AZ_KEY, api_version: 2024-10-21, deployments: { gpt-4o-mini: mini-prod }, timeout: 5s }
  - { name: az1, kind: azure, path_style: v1, base_url: "http://%[6]s", api_key_env: E2E_AZ_KEY, timeout: 5s }
keys:
  - { name: app, key_env: E2E_APP_KEY }
routes:
  - name: support-bot
    prompt: { version: v1, system: "You are a refund assistant." }
    targets: [ { provider: oai, model: gpt-4o-mini } ]
    fallbacks: [ { provider: claude, model: claude-sonnet-4-5 } ]
  - name: azure-bot
    targets: [ { provider: az, model: gpt-4o-mini } ]
  - name: azure-v1
    targets: [ { provider: az1, model: gpt-4o-mini } ]
`

type providersStack struct {
	api, admin      string
	oai, ant, azure string
}

func startProvidersStack(t *testing.T) *providersStack {
	t.Helper()
	dir := t.TempDir()
	s := &providersStack{
		oai:   startMockProc(t, "oai", "--api-key", "sk-oai"),
		ant:   startMockProc(t, "ant", "--api-key", "sk-ant"),
		azure: startMockProc(t, "az", "--api-key", "sk-az"),
	}
	cfg := fmt.Sprintf(providersConfig, anyPort, anyPort, filepath.Join(dir, "data"), s.oai, s.ant, s.azure)
	g := serveConfig(t, filepath.Join(dir, "cairn.yaml"), cfg,
		"E2E_OAI_KEY=sk-oai", "E2E_ANT_KEY=sk-ant", "E2E_AZ_KEY=sk-az", "E2E_APP_KEY=gw-e2e-app")
	s.api, s.admin = g.api, g.admin
	return s
}

func (s *providersStack) client() openai.Client {
	return openai.NewClient(option.WithBaseURL(s.api+"/v1"), option.WithAPIKey("gw-e2e-app"), option.WithMaxRetries(0))
}

// attemptsOf returns a record's attempts as provider → provider request ID,
// in order.
func attemptsOf(t *testing.T, rec map[string]any) (providers, ids []string) {
	t.Helper()
	as, _ := rec["attempts"].([]any)
	for _, a := range as {
		m, _ := a.(map[string]any)
		p, _ := m["provider"].(string)
		id, _ := m["provider_request_id"].(string)
		providers = append(providers, p)
		ids = append(ids, id)
	}
	return providers, ids
}

var refundTool = openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name:        "issue_refund",
	Description: openai.String("Refund an order"),
	Parameters: shared.FunctionParameters{
		"type":       "object",
		"properties": map[string]any{"order_id": map[string]any{"type": "string"}, "amount": map[string]any{"type": "number"}},
		"required":   []string{"order_id", "amount"},
	},
})

// TestE2EAnthropicFallback: an OpenAI-compatible primary answering 503
// fails over to an Anthropic fallback, plain and streamed, text and tool
// calls, all read by the official SDK; each record shows both attempts
// with both providers' request IDs.
func TestE2EAnthropicFallback(t *testing.T) {
	s := startProvidersStack(t)
	setFault(t, s.oai, `{"model":"*","fault":{"status":503}}`)
	c := s.client()
	ctx := context.Background()

	checkRecord := func(t *testing.T, id string, wantTokens bool) {
		t.Helper()
		rec := waitRecord(t, s.admin, id)
		ps, ids := attemptsOf(t, rec)
		if len(ps) != 2 || ps[0] != "oai" || ps[1] != "claude" {
			t.Fatalf("attempts = %v; want [oai claude]\n%s", ps, recordJSON(rec))
		}
		if !strings.HasPrefix(ids[0], "oai-") || !strings.HasPrefix(ids[1], "ant-") {
			t.Errorf("attempt provider request IDs = %v; want oai-… then ant-… (Anthropic's request-id)", ids)
		}
		if rec["provider_request_id"] != ids[1] || rec["provider"] != "claude" || rec["outcome"] != "ok" {
			t.Errorf("record provider %v id %v outcome %v; want claude, %s, ok", rec["provider"], rec["provider_request_id"], rec["outcome"], ids[1])
		}
		if u, _ := rec["usage"].(map[string]any); wantTokens && (u == nil || u["total_tokens"].(float64) == 0) {
			t.Errorf("record usage = %v; want the translated usage", rec["usage"])
		}
	}

	t.Run("plain", func(t *testing.T) {
		var raw *http.Response
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "support-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Where is my refund?")},
		}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Choices[0].Message.Content == "" || resp.Choices[0].FinishReason != "stop" || resp.Usage.TotalTokens == 0 {
			t.Errorf("answer = %+v; want content, finish stop and usage", resp.Choices[0])
		}
		if got := raw.Header.Get("x-cairn-target"); got != "claude/claude-sonnet-4-5" {
			t.Errorf("x-cairn-target = %q; want claude/claude-sonnet-4-5", got)
		}
		if !strings.HasPrefix(raw.Header.Get("x-cairn-provider-request-id"), "ant-") {
			t.Errorf("x-cairn-provider-request-id = %q; want Anthropic's request-id", raw.Header.Get("x-cairn-provider-request-id"))
		}
		checkRecord(t, raw.Header.Get("x-request-id"), true)
	})

	t.Run("plain tool call", func(t *testing.T) {
		var raw *http.Response
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:      "support-bot",
			Messages:   []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Refund order 7")},
			Tools:      []openai.ChatCompletionToolUnionParam{refundTool},
			ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
		}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		ch := resp.Choices[0]
		if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 {
			t.Fatalf("choice = %+v; want one tool call", ch)
		}
		tc := ch.Message.ToolCalls[0]
		var args struct {
			OrderID string  `json:"order_id"`
			Amount  float64 `json:"amount"`
		}
		if tc.Function.Name != "issue_refund" || !strings.HasPrefix(tc.ID, "toolu_") || json.Unmarshal([]byte(tc.Function.Arguments), &args) != nil {
			t.Errorf("tool call = %+v; want issue_refund with JSON arguments and Anthropic's tool_use id", tc)
		}
		checkRecord(t, raw.Header.Get("x-request-id"), true)
	})

	stream := func(t *testing.T, params openai.ChatCompletionNewParams) (openai.ChatCompletionAccumulator, string) {
		t.Helper()
		var raw *http.Response
		st := c.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&raw))
		acc := openai.ChatCompletionAccumulator{}
		usageChunks := 0
		for st.Next() {
			ch := st.Current()
			acc.AddChunk(ch)
			if len(ch.Choices) == 0 && ch.Usage.TotalTokens > 0 {
				usageChunks++
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		asked := params.StreamOptions.IncludeUsage.Value
		if asked && usageChunks != 1 || !asked && usageChunks != 0 {
			t.Errorf("%d usage chunks; include_usage was %v", usageChunks, asked)
		}
		return acc, raw.Header.Get("x-request-id")
	}

	t.Run("streamed", func(t *testing.T) {
		acc, id := stream(t, openai.ChatCompletionNewParams{
			Model:         "support-bot",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream please")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		if acc.Choices[0].Message.Content == "" || acc.Choices[0].FinishReason != "stop" || acc.Usage.TotalTokens == 0 {
			t.Errorf("stream = %+v usage %+v; want content, stop and usage", acc.Choices[0], acc.Usage)
		}
		checkRecord(t, id, true)
	})

	t.Run("streamed tool call", func(t *testing.T) {
		acc, id := stream(t, openai.ChatCompletionNewParams{
			Model:    "support-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Refund order 7")},
			Tools:    []openai.ChatCompletionToolUnionParam{refundTool},
		})
		ch := acc.Choices[0]
		if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 {
			t.Fatalf("stream = %+v; want one tool call", ch)
		}
		tc := ch.Message.ToolCalls[0]
		if tc.Function.Name != "issue_refund" || !json.Valid([]byte(tc.Function.Arguments)) || !strings.Contains(tc.Function.Arguments, "order_id") {
			t.Errorf("tool call = %+v; want issue_refund with whole JSON arguments", tc)
		}
		// Usage was not asked for: the gateway asked upstream anyway (the
		// record has it) and the client saw no usage chunk.
		checkRecord(t, id, true)
	})

	t.Run("untranslatable parameter", func(t *testing.T) {
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "support-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("two answers")},
			N:        openai.Int(2),
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "n" || apiErr.Type != "invalid_request_error" {
			t.Fatalf("n=2 through an anthropic fallback = %v; want a 400 invalid_request_error naming n", err)
		}
	})

	t.Run("anthropic error mapped", func(t *testing.T) {
		setFault(t, s.ant, `{"model":"*","fault":{"status":400}}`)
		defer setFault(t, s.ant, "")
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "support-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("bad")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Type != "invalid_request_error" || apiErr.Message != "Injected mock error." {
			t.Fatalf("anthropic 400 = %v; want OpenAI's shape with Anthropic's message", err)
		}
	})
}

// TestE2EAzure: an Azure OpenAI provider on both path styles, plain and
// streamed, and its content filter's refusal recorded as a refusal.
func TestE2EAzure(t *testing.T) {
	s := startProvidersStack(t)
	c := s.client()
	ctx := context.Background()

	for _, route := range []string{"azure-bot", "azure-v1"} {
		t.Run(route+" plain", func(t *testing.T) {
			var raw *http.Response
			resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    openai.ChatModel(route),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
			}, option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Message.Content == "" {
				t.Errorf("empty answer")
			}
			if !strings.HasPrefix(raw.Header.Get("x-cairn-provider-request-id"), "az-") {
				t.Errorf("x-cairn-provider-request-id = %q; want Azure's apim-request-id", raw.Header.Get("x-cairn-provider-request-id"))
			}
			// The deployment names the model upstream.
			if route == "azure-bot" && resp.Model != "mini-prod" {
				t.Errorf("model = %q; want the deployment mini-prod", resp.Model)
			}
		})
		t.Run(route+" streamed", func(t *testing.T) {
			st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model:    openai.ChatModel(route),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream")},
				Tools:    []openai.ChatCompletionToolUnionParam{refundTool},
			})
			acc := openai.ChatCompletionAccumulator{}
			for st.Next() {
				acc.AddChunk(st.Current())
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
			if len(acc.Choices[0].Message.ToolCalls) != 1 {
				t.Errorf("stream = %+v; want a tool call", acc.Choices[0])
			}
		})
	}

	t.Run("content filter", func(t *testing.T) {
		setFault(t, s.azure, `{"model":"mini-prod","fault":{"status":400,"error_code":"content_filter"}}`)
		defer setFault(t, s.azure, "")
		var raw *http.Response
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "azure-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("something filtered")},
		}, option.WithResponseInto(&raw))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "content_filter" || apiErr.Type != "invalid_request_error" {
			t.Fatalf("content filter = %v; want a 400 with code content_filter and an OpenAI type", err)
		}
		if !strings.Contains(apiErr.RawJSON(), "content_filter_result") {
			t.Errorf("error body %s lost Azure's content_filter_result", apiErr.RawJSON())
		}
		rec := waitRecord(t, s.admin, raw.Header.Get("x-request-id"))
		if rec["refusal"] != true || rec["outcome"] != "ok" {
			t.Errorf("record refusal %v outcome %v; want a refusal, not an upstream error\n%s", rec["refusal"], rec["outcome"], recordJSON(rec))
		}
	})

	t.Run("content filter streamed", func(t *testing.T) {
		setFault(t, s.azure, `{"model":"mini-prod","fault":{"refuse":true,"variant":1}}`)
		defer setFault(t, s.azure, "")
		var raw *http.Response
		st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:    "azure-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("something filtered")},
		}, option.WithResponseInto(&raw))
		acc := openai.ChatCompletionAccumulator{}
		for st.Next() {
			acc.AddChunk(st.Current())
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		if acc.Choices[0].FinishReason != "content_filter" {
			t.Errorf("finish = %q; want content_filter", acc.Choices[0].FinishReason)
		}
		rec := waitRecord(t, s.admin, raw.Header.Get("x-request-id"))
		if rec["refusal"] != true {
			t.Errorf("record refusal %v; want true\n%s", rec["refusal"], recordJSON(rec))
		}
	})
}

// TestCheckProviderKinds: cairn check refuses a bad provider kind with its
// field path and warns about an Azure model without a deployment.
func TestCheckProviderKinds(t *testing.T) {
	dir := t.TempDir()
	write := func(name, cfg string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.yaml", "providers: [{name: c, kind: anthropic, base_url: 'https://api.anthropic.com', max_tokens: -1, api_version: x}]\nroutes: [{name: r, targets: [{provider: c}]}]\n")
	out, err := exec.Command(cairnBin, "check", "--config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "providers[0].max_tokens: -1 must be positive") ||
		!strings.Contains(string(out), "providers[0].api_version: applies only to kind: azure") {
		t.Errorf("cairn check on a bad anthropic provider: %v\n%s", err, out)
	}
	good := write("good.yaml", "providers: [{name: az, kind: azure, base_url: 'https://r.openai.azure.com', api_version: 2024-10-21, deployments: {gpt-4o-mini: mini}}]\nroutes: [{name: r, targets: [{provider: az, model: gpt-4o}]}]\n")
	out, err = exec.Command(cairnBin, "check", "--config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `warning: routes[0].targets[0].model: "gpt-4o" has no entry in providers[az].deployments`) {
		t.Errorf("cairn check on an azure provider: %v\n%s", err, out)
	}
}
