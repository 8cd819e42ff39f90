package main

// The Responses API end to end (issue 19): the official OpenAI Go SDK's
// responses client against two real cairn replicas sharing a real Redis,
// in front of two mock provider processes, by base URL alone.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"

	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/cairnhq/cairn/loadtest"
)

const responsesE2EConfig = `
listen: %s
admin_listen: %s
data_dir: %s
redis_url: %s
release: "e2e"
providers:
  - { name: primary, base_url: "http://%s/v1", api_key_env: E2E_PROVIDER_KEY, timeout: 3s }
  - { name: canary, base_url: "http://%s/v1", timeout: 3s }
keys:
  - { name: app, key_env: E2E_APP_KEY }
routes:
  - name: agent
    prompt: { version: v3, system: "You are a refund assistant." }
    targets:
      - { provider: primary, model: gpt-4o-mini, weight: 50 }
      - { provider: canary, model: gpt-4.1-mini, weight: 50, cohort: canary }
`

// TestE2EResponsesSDK: plain, streamed, function calls (and their output
// sent back), structured output, and previous_response_id across a 50/50
// cohort split and across two replicas. Each mock knows only the responses
// it created (404 otherwise), so a continuation routed by weight instead
// of by placement fails in the SDK.
func TestE2EResponsesSDK(t *testing.T) {
	rs := redistest.Start(t)
	mocks := []string{startMockProc(t, "rmock0"), startMockProc(t, "rmock1")}
	dir := t.TempDir()
	var apis []string
	for i := range 2 {
		cfg := fmt.Sprintf(responsesE2EConfig, anyPort, anyPort, filepath.Join(dir, fmt.Sprint("data", i)), rs.URL(), mocks[0], mocks[1])
		g := serveConfig(t, filepath.Join(dir, fmt.Sprintf("cairn%d.yaml", i)), cfg,
			"E2E_PROVIDER_KEY=sk-e2e-provider", "E2E_APP_KEY=gw-e2e-app")
		apis = append(apis, g.api)
	}
	client := func(api string) openai.Client {
		return openai.NewClient(option.WithBaseURL(api+"/v1"), option.WithAPIKey("gw-e2e-app"), option.WithMaxRetries(0))
	}
	a, b := client(apis[0]), client(apis[1])
	ctx := context.Background()
	input := func(s string) responses.ResponseNewParamsInputUnion {
		return responses.ResponseNewParamsInputUnion{OfString: openai.String(s)}
	}

	t.Run("plain", func(t *testing.T) {
		var raw *http.Response
		resp, err := a.Responses.New(ctx, responses.ResponseNewParams{Model: "agent", Input: input("Where is my refund?"),
			Instructions: openai.String("Be brief.")}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if resp.OutputText() != loadtest.DefaultMockContent || !strings.HasPrefix(resp.ID, "resp_") {
			t.Fatalf("output %q id %q", resp.OutputText(), resp.ID)
		}
		if resp.Usage.InputTokens == 0 || resp.Usage.OutputTokens == 0 {
			t.Errorf("usage = %+v", resp.Usage)
		}
		if resp.Instructions.OfString != "You are a refund assistant.\n\nBe brief." {
			t.Errorf("instructions the provider saw = %q", resp.Instructions.OfString)
		}
		if raw.Header.Get("x-request-id") == "" || raw.Header.Get("x-cairn-provider-request-id") == "" {
			t.Errorf("IDs: %v", raw.Header)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		stream := a.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "agent", Input: input("Where is my refund?")})
		var text strings.Builder
		var completed *responses.Response
		types := map[string]int{}
		for stream.Next() {
			ev := stream.Current()
			types[ev.Type]++
			switch ev.Type {
			case "response.output_text.delta":
				text.WriteString(ev.Delta)
			case "response.completed":
				r := ev.Response
				completed = &r
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if text.String() != loadtest.DefaultMockContent || completed == nil || completed.Usage.OutputTokens == 0 {
			t.Fatalf("text %q, completed %v, events %v", text.String(), completed != nil, types)
		}
		if types["response.created"] != 1 || types["response.output_text.delta"] < 2 {
			t.Errorf("events = %v", types)
		}
	})

	params := map[string]any{"type": "object", "required": []string{"order_id"},
		"properties": map[string]any{"order_id": map[string]any{"type": "string"}}}
	toolParams := responses.ResponseNewParams{
		Model: "agent", Input: input("Where is order 42?"),
		Tools:      []responses.ToolUnionParam{responses.ToolParamOfFunction("lookup_order", params, true)},
		ToolChoice: responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: param.NewOpt(responses.ToolChoiceOptionsRequired)},
	}

	t.Run("function calls", func(t *testing.T) {
		var raw *http.Response
		resp, err := a.Responses.New(ctx, toolParams, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Output) != 1 || resp.Output[0].Type != "function_call" {
			t.Fatalf("output = %+v", resp.Output)
		}
		call := resp.Output[0].AsFunctionCall()
		var args map[string]any
		if call.Name != "lookup_order" || json.Unmarshal([]byte(call.Arguments), &args) != nil || args["order_id"] == nil {
			t.Fatalf("call %q(%s)", call.Name, call.Arguments)
		}
		if got := raw.Header.Get("x-cairn-contract"); got != "pass" {
			t.Errorf("x-cairn-contract = %q; want pass", got)
		}
		// The tool's result goes back on the other replica, continuing the
		// response where it lives.
		out := responses.ResponseInputItemParamOfFunctionCallOutput(`{"status":"shipped"}`)
		out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
		next, err := b.Responses.New(ctx, responses.ResponseNewParams{Model: "agent", PreviousResponseID: openai.String(resp.ID),
			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{out}}})
		if err != nil {
			t.Fatal(err)
		}
		if next.PreviousResponseID != resp.ID || next.OutputText() == "" {
			t.Errorf("continuation: previous %q text %q", next.PreviousResponseID, next.OutputText())
		}

		stream := a.Responses.NewStreaming(ctx, toolParams)
		var argText strings.Builder
		name := ""
		for stream.Next() {
			ev := stream.Current()
			switch ev.Type {
			case "response.output_item.added":
				if ev.Item.Type == "function_call" {
					name = ev.Item.Name
				}
			case "response.function_call_arguments.delta":
				argText.WriteString(ev.Delta)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if name != "lookup_order" || json.Unmarshal([]byte(argText.String()), &args) != nil {
			t.Errorf("streamed call %q(%s)", name, argText.String())
		}
	})

	t.Run("structured output", func(t *testing.T) {
		schema := map[string]any{"type": "object", "required": []string{"refund_id", "amount"}, "additionalProperties": false,
			"properties": map[string]any{"refund_id": map[string]any{"type": "string"}, "amount": map[string]any{"type": "number"}}}
		var raw *http.Response
		resp, err := a.Responses.New(ctx, responses.ResponseNewParams{Model: "agent", Input: input("Refund status?"),
			Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigParamOfJSONSchema("refund", schema)}},
			option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			RefundID *string  `json:"refund_id"`
			Amount   *float64 `json:"amount"`
		}
		if err := json.Unmarshal([]byte(resp.OutputText()), &v); err != nil || v.RefundID == nil || v.Amount == nil {
			t.Fatalf("output %q: %v", resp.OutputText(), err)
		}
		if got := raw.Header.Get("x-cairn-contract"); got != "pass" {
			t.Errorf("x-cairn-contract = %q; want pass", got)
		}
	})

	t.Run("previous_response_id across the cohort split and replicas", func(t *testing.T) {
		seen := map[string]int{}
		for i := range 12 {
			var raw *http.Response
			first, err := a.Responses.New(ctx, responses.ResponseNewParams{Model: "agent", Input: input("My name is Ada.")}, option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			target := raw.Header.Get("x-cairn-target")
			seen[target]++
			// Continue on the other replica, streamed every other time.
			next := responses.ResponseNewParams{Model: "agent", Input: input("What is my name?"), PreviousResponseID: openai.String(first.ID)}
			if i%2 == 0 {
				var raw2 *http.Response
				r2, err := b.Responses.New(ctx, next, option.WithResponseInto(&raw2))
				if err != nil {
					t.Fatalf("continue %s (created on %s) on replica b: %v", first.ID, target, err)
				}
				if got := raw2.Header.Get("x-cairn-target"); got != target || r2.PreviousResponseID != first.ID {
					t.Fatalf("continuation of %s went to %q; created on %q", first.ID, got, target)
				}
			} else {
				stream := b.Responses.NewStreaming(ctx, next)
				for stream.Next() {
				}
				if err := stream.Err(); err != nil {
					t.Fatalf("streamed continuation of %s (created on %s) on replica b: %v", first.ID, target, err)
				}
			}
			got, err := b.Responses.Get(ctx, first.ID, responses.ResponseGetParams{})
			if err != nil || got.ID != first.ID {
				t.Fatalf("GET %s on replica b: %v", first.ID, err)
			}
			items, err := b.Responses.InputItems.List(ctx, first.ID, responses.InputItemListParams{})
			if err != nil || len(items.Data) != 1 {
				t.Fatalf("input_items of %s: %v", first.ID, err)
			}
			if err := b.Responses.Delete(ctx, first.ID); err != nil {
				t.Fatalf("DELETE %s: %v", first.ID, err)
			}
		}
		if len(seen) != 2 {
			t.Fatalf("targets = %v; want both cohorts of the split", seen)
		}
		_, err := a.Responses.New(ctx, responses.ResponseNewParams{Model: "agent", Input: input("x"), PreviousResponseID: openai.String("resp_never_made")})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "previous_response_not_found" {
			t.Fatalf("unknown previous_response_id: %v", err)
		}
	})
}
