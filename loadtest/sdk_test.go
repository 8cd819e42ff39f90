package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// The official OpenAI Go SDK as the client proves the mock is wire-compatible.

func sdkClient(url string) openai.Client {
	return openai.NewClient(option.WithBaseURL(url+"/v1"), option.WithAPIKey("x"), option.WithMaxRetries(0))
}

var sdkWeatherTool = openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name: "get_weather",
	Parameters: shared.FunctionParameters{
		"type": "object",
		"properties": map[string]any{
			"city":  map[string]any{"type": "string"},
			"unit":  map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
			"hours": map[string]any{"type": "array", "items": map[string]any{"type": "integer"}, "minItems": 2},
		},
		"required":             []string{"city", "unit", "hours"},
		"additionalProperties": false,
	},
})

func TestSDKPlain(t *testing.T) {
	m, url := startMock(t, MockOptions{RequestIDPrefix: "sdk"})
	c := sdkClient(url)
	var raw *http.Response
	resp, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hi")},
	}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "gpt-4o-mini" || len(resp.Choices) != 1 || resp.Choices[0].Message.Content != DefaultMockContent || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("response = %+v", resp)
	}
	if resp.Usage.TotalTokens == 0 {
		t.Errorf("usage = %+v", resp.Usage)
	}
	if id := raw.Header.Get("x-request-id"); !strings.HasPrefix(id, "sdk-") {
		t.Errorf("x-request-id = %q", id)
	}
	h, _ := m.LastRequest()
	if h["Authorization"] != "Bearer x" {
		t.Errorf("Authorization = %q", h["Authorization"])
	}
}

func TestSDKStreaming(t *testing.T) {
	_, url := startMock(t, MockOptions{Chunks: 6})
	c := sdkClient(url)
	stream := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:         "gpt-4o-mini",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hi")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks != 1+6+1+1 {
		t.Errorf("%d chunks; want role + 6 pieces + finish + usage", chunks)
	}
	if got := acc.Choices[0].Message.Content; got != DefaultMockContent {
		t.Errorf("accumulated content = %q", got)
	}
	if acc.Choices[0].FinishReason != "stop" || acc.Usage.TotalTokens == 0 {
		t.Errorf("finish %q usage %+v", acc.Choices[0].FinishReason, acc.Usage)
	}
}

func TestSDKToolCalls(t *testing.T) {
	_, url := startMock(t, MockOptions{Chunks: 7})
	c := sdkClient(url)
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Almaty?")},
		Tools:    []openai.ChatCompletionToolUnionParam{sdkWeatherTool},
	}
	check := func(t *testing.T, name, args string) {
		t.Helper()
		if name != "get_weather" {
			t.Errorf("tool name = %q", name)
		}
		var got struct {
			City  string  `json:"city"`
			Unit  string  `json:"unit"`
			Hours []int64 `json:"hours"`
		}
		if err := json.Unmarshal([]byte(args), &got); err != nil || got.City == "" || got.Unit != "celsius" || len(got.Hours) != 2 {
			t.Errorf("arguments = %s (%v)", args, err)
		}
	}

	t.Run("plain", func(t *testing.T) {
		resp, err := c.Chat.Completions.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		msg := resp.Choices[0].Message
		if resp.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 1 {
			t.Fatalf("choice = %+v", resp.Choices[0])
		}
		check(t, msg.ToolCalls[0].Function.Name, msg.ToolCalls[0].Function.Arguments)
	})

	t.Run("streamed", func(t *testing.T) {
		stream := c.Chat.Completions.NewStreaming(context.Background(), params)
		acc := openai.ChatCompletionAccumulator{}
		var finished []openai.FinishedChatCompletionToolCall
		for stream.Next() {
			acc.AddChunk(stream.Current())
			if tc, ok := acc.JustFinishedToolCall(); ok {
				finished = append(finished, tc)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(finished) != 1 {
			t.Fatalf("finished tool calls = %+v", finished)
		}
		check(t, finished[0].Name, finished[0].Arguments)
		if acc.Choices[0].FinishReason != "tool_calls" {
			t.Errorf("finish_reason = %q", acc.Choices[0].FinishReason)
		}
	})

	t.Run("json_schema", func(t *testing.T) {
		resp, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Refund?")},
			ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
					Name:   "refund",
					Strict: openai.Bool(true),
					Schema: map[string]any{
						"type":                 "object",
						"properties":           map[string]any{"approve": map[string]any{"type": "boolean"}, "reason": map[string]any{"type": "string", "minLength": 5}},
						"required":             []string{"approve", "reason"},
						"additionalProperties": false,
					},
				},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Approve *bool  `json:"approve"`
			Reason  string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content), &got); err != nil || got.Approve == nil || len(got.Reason) < 5 {
			t.Errorf("content = %s (%v)", resp.Choices[0].Message.Content, err)
		}
	})
}

func TestSDKErrorsAndEmbeddings(t *testing.T) {
	m, url := startMock(t, MockOptions{})
	c := sdkClient(url)
	m.SetFault("*", Fault{Status: 429})
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" {
		t.Errorf("err = %v; want a 429 rate_limit_exceeded *openai.Error", err)
	}
	m.ClearFaults()

	emb, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b", "c"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 3 || len(emb.Data[2].Embedding) != 8 || emb.Data[2].Index != 2 {
		t.Errorf("embeddings = %+v", emb.Data)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	page, err := c.Models.List(ctx)
	if err != nil || len(page.Data) == 0 {
		t.Errorf("models = %+v, %v", page, err)
	}
}
