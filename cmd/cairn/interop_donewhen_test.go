package main

// Issue 14's "done when": items 1–5 end to end with the official OpenAI Go
// SDK against an upstream whose keep-alive is 5 s and one that restarts
// mid-run: every call gets its right answer (0 client errors: the relayed
// 429 and the 413 are the answers the provider and the gateway owe), and the
// upstream's counts show no request received twice.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// doneWhenRound exercises items 1–5 once through the SDK and returns what
// went wrong.
func doneWhenRound(ctx context.Context, c openai.Client, tag string) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(tag+": "+format, a...)) }

	// 1: chats, half streamed, on pooled connections.
	errs = append(errs, sdkRound(c, tag+"-chat", 4)...)

	// 2: an oversized body is a readable 413, sent once.
	big := strings.Repeat("lorem ipsum ", 9<<20/12)
	_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "chat",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(big)},
		User:     openai.String(tag + "-big"),
	}, option.WithMaxRetries(2))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 413 || apiErr.Code != "request_too_large" {
		fail("oversized body: %v; want 413 request_too_large", err)
	}

	// 3: the upstream's 429 arrives with its details.
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "chat",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		User:     openai.String(tag + "-ratelimited"),
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" ||
		apiErr.Response.Header.Get("retry-after") != "3" || apiErr.Response.Header.Get("x-cairn-target") != "up/up-model" ||
		apiErr.Response.Header.Get("x-cairn-provider-request-id") != "upreq-"+tag+"-ratelimited" {
		fail("upstream 429: %v; want it relayed with retry-after, target and provider request ID", err)
	}

	// 4: no request-ID header: the body's id is the provider request ID.
	var raw *http.Response
	resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "chat",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		User:     openai.String(tag + "-noid"),
	}, option.WithResponseInto(&raw))
	if err != nil {
		fail("no request-ID header: %v", err)
	} else if got := raw.Header.Get("x-cairn-provider-request-id"); got == "" || got != resp.ID {
		fail("x-cairn-provider-request-id = %q; want the body's id %q", got, resp.ID)
	}

	// 5: models.retrieve and the legacy completions endpoint.
	if m, err := c.Models.Get(ctx, "chat"); err != nil || m.ID != "chat" {
		fail("models.retrieve: %+v, %v", m, err)
	}
	comp, err := c.Completions.New(ctx, openai.CompletionNewParams{
		Model:  "chat",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")},
		User:   openai.String(tag + "-legacy"),
	})
	if err != nil || len(comp.Choices) != 1 || comp.Choices[0].Text != "ok" {
		fail("completions: %+v, %v", comp, err)
	}
	return errs
}

func TestInteropDoneWhen(t *testing.T) {
	failer := func(w http.ResponseWriter, user string) bool {
		h := w.Header()
		switch {
		case strings.HasSuffix(user, "-ratelimited"):
			h.Set("content-type", "application/json")
			h.Set("x-request-id", "upreq-"+user)
			h.Set("retry-after", "3")
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`))
			return true
		case strings.HasSuffix(user, "-noid"):
			h.Set("content-type", "application/json")
			fmt.Fprintf(w, `{"id":"chatcmpl-%s","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`, user)
			return true
		}
		return false
	}
	check := func(t *testing.T, up *countingUpstream, g *relGateway, errs []error) {
		t.Helper()
		if len(errs) > 0 {
			t.Errorf("%d client errors, want 0: %v", len(errs), errs)
		}
		if d := up.duplicates(); len(d) > 0 {
			t.Errorf("upstream received requests twice: %v", d)
		}
		up.mu.Lock()
		for user, n := range up.seen {
			if strings.HasSuffix(user, "-big") {
				t.Errorf("upstream received the oversized request %s %d times; want 0", user, n)
			}
		}
		up.mu.Unlock()
		t.Logf("%d stale pooled connections resent before a byte was written", staleResends(t, g.admin))
	}

	t.Run("upstream with a 5 s keep-alive", func(t *testing.T) {
		t.Parallel()
		up := startCountingUpstream(t, 5*time.Second)
		up.set(failer, false)
		g := startInteropGateway(t, up.addr)
		c := sdkClient(g.api)
		var errs []error
		// 6.5 s idle: the upstream closed every pooled connection; 4.6 s:
		// it has not yet.
		for i, gap := range []time.Duration{0, 6500 * time.Millisecond, 4600 * time.Millisecond} {
			time.Sleep(gap)
			errs = append(errs, doneWhenRound(context.Background(), c, fmt.Sprintf("ka%d", i))...)
		}
		check(t, up, g, errs)
		if n := staleResends(t, g.admin); n == 0 {
			t.Errorf("no stale connection resent after 6.5 s idle; want the closed ones found")
		}
	})

	t.Run("upstream restarting mid-run", func(t *testing.T) {
		t.Parallel()
		up := startCountingUpstream(t, time.Minute)
		up.set(failer, false)
		g := startInteropGateway(t, up.addr)
		c := sdkClient(g.api)
		var errs []error
		for i := range 4 {
			errs = append(errs, doneWhenRound(context.Background(), c, fmt.Sprintf("rs%d", i))...)
			up.restart(t)
		}
		check(t, up, g, errs)
	})
}
