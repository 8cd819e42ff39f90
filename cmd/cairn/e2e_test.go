package main

// End-to-end: the real cairn binary on loopback ports, the mock provider as
// a separate process, and the official OpenAI Go SDK as the client.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

var cairnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cairnBin = filepath.Join(dir, "cairn")
	build := exec.Command("go", "build", "-o", cairnBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cairn:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type e2e struct {
	api, admin, dataDir, cfgPath string
	mocks                        []string
	gw                           *proc
}

const e2eConfig = `
listen: %s
admin_listen: %s
data_dir: %s
release: "e2e"
providers:
  - { name: primary, base_url: "http://%s/v1", api_key_env: E2E_PROVIDER_KEY, timeout: 3s }
  - { name: canary, base_url: "http://%s/v1", timeout: 3s }
keys:
  - { name: app, key_env: E2E_APP_KEY }
routes:
  - name: support-bot
    sticky: user
    prompt: { version: v18, system: "You are a refund assistant." }
    targets:
      - { provider: primary, model: gpt-4o-mini, weight: 80 }
      - { provider: canary, model: gpt-4.1-mini, weight: 20, cohort: canary }
    fallbacks:
      - { provider: primary, model: gpt-4o-mini }
    auto_rollback: true
`

func startE2E(t *testing.T) *e2e {
	t.Helper()
	dir := t.TempDir()
	e := &e2e{dataDir: filepath.Join(dir, "data"), cfgPath: filepath.Join(dir, "cairn.yaml")}
	for i := range 2 {
		e.mocks = append(e.mocks, startMockProc(t, fmt.Sprintf("mock%d", i)))
	}
	cfg := fmt.Sprintf(e2eConfig, anyPort, anyPort, e.dataDir, e.mocks[0], e.mocks[1])
	g := serveConfig(t, e.cfgPath, cfg, "E2E_PROVIDER_KEY=sk-e2e-provider", "E2E_APP_KEY=gw-e2e-app")
	e.api, e.admin, e.gw = g.api, g.admin, g.gw
	return e
}

func (e *e2e) client(opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(e.api + "/v1"), option.WithAPIKey("gw-e2e-app"), option.WithMaxRetries(0),
	}, opts...)...)
}

func TestE2ESDK(t *testing.T) {
	e := startE2E(t)
	ctx := context.Background()
	c := e.client()

	t.Run("plain", func(t *testing.T) {
		var raw *http.Response
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "support-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Where is my refund?")},
			User:     openai.String("alice"),
		}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Choices[0].Message.Content == "" {
			t.Errorf("empty content")
		}
		if id := raw.Header.Get("x-request-id"); !strings.HasPrefix(id, "req_") {
			t.Errorf("x-request-id = %q", id)
		}
		if raw.Header.Get("x-cairn-provider-request-id") == "" || raw.Header.Get("x-cairn-cohort") == "" {
			t.Errorf("missing cairn headers: %v", raw.Header)
		}
		// Lookup by the gateway ID through the admin API and the CLI.
		id := raw.Header.Get("x-request-id")
		deadline := time.Now().Add(startupWait)
		for {
			r, err := http.Get(e.admin + "/admin/requests/" + id)
			if err == nil && r.StatusCode == 200 {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if !strings.Contains(string(b), raw.Header.Get("x-cairn-provider-request-id")) {
					t.Errorf("record lacks the provider ID: %s", b)
				}
				break
			}
			if r != nil {
				r.Body.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %s not found through the admin API", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         "support-bot",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream please")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if acc.Choices[0].Message.Content == "" || acc.Usage.TotalTokens == 0 {
			t.Errorf("content %q usage %+v", acc.Choices[0].Message.Content, acc.Usage)
		}
	})

	tool := openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name: "issue_refund",
		Parameters: shared.FunctionParameters{
			"type": "object",
			"properties": map[string]any{
				"order_id": map[string]any{"type": "string"},
				"amount":   map[string]any{"type": "number"},
			},
			"required": []string{"order_id", "amount"},
		},
	})
	t.Run("tool call", func(t *testing.T) {
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "support-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Refund order 7")},
			Tools:    []openai.ChatCompletionToolUnionParam{tool},
		})
		if err != nil {
			t.Fatal(err)
		}
		tcs := resp.Choices[0].Message.ToolCalls
		if len(tcs) != 1 || tcs[0].Function.Name != "issue_refund" || !json.Valid([]byte(tcs[0].Function.Arguments)) {
			t.Errorf("tool calls = %+v", tcs)
		}
	})

	t.Run("streamed tool call", func(t *testing.T) {
		stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:    "support-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Refund order 7")},
			Tools:    []openai.ChatCompletionToolUnionParam{tool},
		})
		acc := openai.ChatCompletionAccumulator{}
		finished := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			if _, ok := acc.JustFinishedToolCall(); ok {
				finished++
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		tcs := acc.Choices[0].Message.ToolCalls
		if len(tcs) != 1 || tcs[0].Function.Name != "issue_refund" || !json.Valid([]byte(tcs[0].Function.Arguments)) {
			t.Errorf("accumulated tool calls = %+v", tcs)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "no-such-model",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
			t.Errorf("unknown model: %v", err)
		}
		bad := e.client(option.WithAPIKey("wrong"))
		_, err = bad.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "support-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
		})
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
			t.Errorf("bad key: %v", err)
		}
	})

	t.Run("failover", func(t *testing.T) {
		setFault(t, e.mocks[1], `{"model":"*","fault":{"status":503}}`)
		defer setFault(t, e.mocks[1], "")
		for i := range 30 {
			var raw *http.Response
			_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    "support-bot",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
				User:     openai.String(fmt.Sprintf("failover-%d", i)),
			}, option.WithResponseInto(&raw))
			if err != nil {
				t.Fatalf("request %d failed despite a healthy fallback: %v", i, err)
			}
		}
	})

	t.Run("shutdown with a stream in flight", func(t *testing.T) {
		setFault(t, e.mocks[0], `{"model":"*","fault":{"slow_chunks":"150ms"}}`)
		setFault(t, e.mocks[1], `{"model":"*","fault":{"slow_chunks":"150ms"}}`)
		stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:    "support-bot",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("long answer")},
		})
		if !stream.Next() {
			t.Fatalf("no first chunk: %v", stream.Err())
		}
		if err := e.gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		n := 1
		for stream.Next() {
			n++
		}
		if err := stream.Err(); err != nil {
			t.Errorf("stream broke during drain after %d chunks: %v", n, err)
		}
		if err := e.gw.wait(); err != nil {
			t.Errorf("gateway exit: %v", err)
		}
		// Every request got exactly one record, flushed before exit.
		out, err := exec.Command(cairnBin, "requests", "show", "--data-dir", e.dataDir, "no-such-id").CombinedOutput()
		if err == nil {
			t.Errorf("lookup of a missing ID succeeded: %s", out)
		}
	})
}

func setFault(t *testing.T, mock, body string) {
	t.Helper()
	method := http.MethodPost
	if body == "" {
		method = http.MethodDelete
	}
	req, _ := http.NewRequest(method, "http://"+mock+"/mock/faults", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode >= 300 {
		t.Fatalf("set fault: %s %s", r.Status, b)
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("providers: [{name: p, base_url: 'http://127.0.0.1:1/v1'}]\nroutes: [{name: r, targets: [{provider: p}]}]\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("providers: [{name: p, base_url: 'ftp://x'}]\nroutes: [{name: r, targets: [{provider: q, weight: -1}]}]\n"), 0o600)
	out, err := exec.Command(cairnBin, "check", "--config", good).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok: ") || strings.Count(string(out), "\n") != 1 {
		t.Errorf("check good = %v %q", err, out)
	}
	out, err = exec.Command(cairnBin, "check", "--config", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("check bad exited 0: %s", out)
	}
	for _, want := range []string{"providers[0].base_url", `routes[0].targets[0].provider: unknown provider "q"`, "routes[0].targets[0].weight"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	envRe := regexp.MustCompile(`_env:\s*([A-Z][A-Z0-9_]*)`)
	for _, ex := range []string{"single-provider.yaml", "canary.yaml", "replicas-redis.yaml", "demo.yaml"} {
		path := filepath.Join("..", "..", "configs", ex)
		raw, _ := os.ReadFile(path)
		cmd := exec.Command(cairnBin, "check", "--config", path)
		cmd.Env = os.Environ()
		for _, m := range envRe.FindAllSubmatch(raw, -1) {
			cmd.Env = append(cmd.Env, string(m[1])+"=test-secret-"+string(m[1]))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cairn check %s: %v\n%s", ex, err, out)
		}
	}
}
