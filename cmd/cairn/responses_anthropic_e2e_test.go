package main

// End-to-end for /v1/responses to a kind: anthropic provider (issue 19):
// the official SDK's Responses client, an OpenAI-compatible primary
// answering 503, and the Anthropic fallback answering through the
// translation, plain, streamed and with a function call round trip.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"
)

func TestE2EAnthropicResponsesFallback(t *testing.T) {
	s := startProvidersStack(t)
	setFault(t, s.oai, `{"model":"*","fault":{"status":503}}`)
	c := s.client()
	ctx := context.Background()
	input := func(s string) responses.ResponseNewParamsInputUnion {
		return responses.ResponseNewParamsInputUnion{OfString: openai.String(s)}
	}
	checkRecord := func(t *testing.T, id string) {
		t.Helper()
		rec := waitRecord(t, s.admin, id)
		ps, ids := attemptsOf(t, rec)
		if len(ps) != 2 || ps[0] != "oai" || ps[1] != "claude" || !strings.HasPrefix(ids[1], "ant-") {
			t.Fatalf("attempts = %v %v; want [oai claude] with Anthropic's request-id\n%s", ps, ids, recordJSON(rec))
		}
		if u, _ := rec["usage"].(map[string]any); u == nil || u["total_tokens"].(float64) == 0 {
			t.Errorf("record usage = %v; want the translated usage", rec["usage"])
		}
	}

	var firstID string
	t.Run("plain", func(t *testing.T) {
		var raw *http.Response
		resp, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "support-bot", Input: input("Where is my refund?"),
			Instructions: openai.String("Be brief.")}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if resp.OutputText() == "" || resp.Status != "completed" || resp.Usage.InputTokens == 0 || resp.Usage.TotalTokens == 0 {
			t.Errorf("response = %+v", resp)
		}
		if got := raw.Header.Get("x-cairn-target"); got != "claude/claude-sonnet-4-5" {
			t.Errorf("x-cairn-target = %q", got)
		}
		firstID = resp.ID
		checkRecord(t, raw.Header.Get("x-request-id"))
	})

	t.Run("not stored", func(t *testing.T) {
		_, err := c.Responses.Get(ctx, firstID, responses.ResponseGetParams{})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
			t.Errorf("Get(%s) = %v; want a 404 (Anthropic keeps nothing)", firstID, err)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		var raw *http.Response
		stream := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "support-bot", Input: input("Where is my refund?")}, option.WithResponseInto(&raw))
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
		if text.Len() == 0 || completed == nil || completed.OutputText() != text.String() || completed.Usage.OutputTokens == 0 {
			t.Fatalf("text %q, completed %+v, events %v", text.String(), completed, types)
		}
		if types["response.created"] != 1 || types["response.output_item.added"] != 1 || types["response.output_item.done"] != 1 {
			t.Errorf("events = %v", types)
		}
		checkRecord(t, raw.Header.Get("x-request-id"))
	})

	params := map[string]any{"type": "object", "required": []string{"order_id"},
		"properties": map[string]any{"order_id": map[string]any{"type": "string"}}}
	toolParams := responses.ResponseNewParams{
		Model:      "support-bot",
		Input:      input("Where is order 7?"),
		Tools:      []responses.ToolUnionParam{responses.ToolParamOfFunction("lookup_order", params, true)},
		ToolChoice: responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: param.NewOpt(responses.ToolChoiceOptionsRequired)},
	}
	t.Run("function call", func(t *testing.T) {
		resp, err := c.Responses.New(ctx, toolParams)
		if err != nil {
			t.Fatal(err)
		}
		var call responses.ResponseFunctionToolCall
		for _, it := range resp.Output {
			if it.Type == "function_call" {
				call = it.AsFunctionCall()
			}
		}
		if call.Name != "lookup_order" || call.CallID == "" || !strings.Contains(call.Arguments, "order_id") {
			t.Fatalf("output = %+v; want a lookup_order call", resp.Output)
		}
		out := responses.ResponseInputItemParamOfFunctionCallOutput(`{"status":"shipped"}`)
		out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
		next, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "support-bot",
			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
				responses.ResponseInputItemParamOfMessage("Where is order 7?", responses.EasyInputMessageRoleUser),
				responses.ResponseInputItemParamOfFunctionCall(call.Arguments, call.CallID, call.Name),
				out,
			}}})
		if err != nil {
			t.Fatal(err)
		}
		if next.OutputText() == "" {
			t.Errorf("answer after the tool result = %+v", next.Output)
		}
	})

	t.Run("function call streamed", func(t *testing.T) {
		stream := c.Responses.NewStreaming(ctx, toolParams)
		var args strings.Builder
		var done responses.ResponseFunctionToolCall
		for stream.Next() {
			ev := stream.Current()
			switch ev.Type {
			case "response.function_call_arguments.delta":
				args.WriteString(ev.Delta)
			case "response.output_item.done":
				if ev.Item.Type == "function_call" {
					done = ev.Item.AsFunctionCall()
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if done.Name != "lookup_order" || done.Arguments != args.String() || args.Len() == 0 {
			t.Errorf("call %+v, streamed arguments %q", done, args.String())
		}
	})

	t.Run("continuation refused", func(t *testing.T) {
		_, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "support-bot", Input: input("and then?"),
			PreviousResponseID: openai.String(firstID)})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Param != "previous_response_id" {
			t.Errorf("continuing %s = %v; want a 404 naming previous_response_id", firstID, err)
		}
	})
}
