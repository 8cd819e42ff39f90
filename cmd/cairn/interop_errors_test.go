package main

// Issue 14.3 and 14.4: when no fallback answers, the client sees the last
// upstream's error as the provider sent it; the provider request ID comes
// from the body when no header carries it.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func TestInteropUpstreamErrorsRelayed(t *testing.T) {
	up := startCountingUpstream(t, 0)
	g := startInteropGateway(t, up.addr)
	c := sdkClient(g.api)
	const key = "sk-interop-provider-secret"
	up.set(func(w http.ResponseWriter, user string) bool {
		h := w.Header()
		h.Set("x-request-id", "upreq-"+user)
		switch {
		case strings.HasPrefix(user, "ratelimited"):
			h.Set("content-type", "application/json")
			h.Set("retry-after", "3")
			h.Set("retry-after-ms", "2500")
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"error":{"message":"Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3. Key ` + key + `","type":"requests","param":null,"code":"rate_limit_exceeded"}}`))
		case strings.HasPrefix(user, "quota"):
			h.Set("content-type", "application/json")
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`))
		case strings.HasPrefix(user, "hangup"):
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close() // no answer at all: a transport failure
			}
		case strings.HasPrefix(user, "plain503"):
			h.Set("content-type", "text/plain")
			h.Set("retry-after", "7")
			w.WriteHeader(503)
			_, _ = w.Write([]byte("model is loading, try again"))
		default:
			return false
		}
		return true
	}, false)

	call := func(t *testing.T, user string, stream bool) (*openai.Error, *http.Response) {
		t.Helper()
		p := openai.ChatCompletionNewParams{
			Model:    "chat",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			User:     openai.String(user),
		}
		var err error
		if stream {
			s := c.Chat.Completions.NewStreaming(context.Background(), p)
			for s.Next() {
			}
			err = s.Err()
		} else {
			_, err = c.Chat.Completions.New(context.Background(), p)
		}
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("%s: err = %v; want an *openai.Error", user, err)
		}
		return apiErr, apiErr.Response
	}

	for _, stream := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "stream"}[stream]
		t.Run("429 with retry hints/"+name, func(t *testing.T) {
			user := "ratelimited-" + name
			e, resp := call(t, user, stream)
			if e.StatusCode != 429 || e.Code != "rate_limit_exceeded" || e.Type != "requests" {
				t.Errorf("status %d type %q code %q; want the upstream's 429 requests/rate_limit_exceeded", e.StatusCode, e.Type, e.Code)
			}
			if !strings.Contains(e.Message, "Rate limit reached for gpt-4o-mini") || strings.Contains(e.RawJSON(), key) {
				t.Errorf("message %q; want the upstream's, with the provider key redacted", e.Message)
			}
			for h, want := range map[string]string{
				"retry-after": "3", "retry-after-ms": "2500", "x-cairn-target": "up/up-model",
				"x-cairn-provider-request-id": "upreq-" + user, "x-cairn-route": "chat",
			} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s = %q; want %q", h, got, want)
				}
			}
			rec := waitRecord(t, g.admin, resp.Header.Get("x-request-id"))
			if rec["provider_request_id"] != "upreq-"+user || rec["provider"] != "up" || rec["status"] != float64(429) {
				t.Errorf("record provider_request_id %v provider %v status %v; want upreq-%s up 429", rec["provider_request_id"], rec["provider"], rec["status"], user)
			}
		})
	}
	t.Run("insufficient_quota is kept", func(t *testing.T) {
		e, _ := call(t, "quota", false)
		if e.StatusCode != 429 || e.Type != "insufficient_quota" || e.Code != "insufficient_quota" {
			t.Errorf("status %d type %q code %q; want 429 insufficient_quota", e.StatusCode, e.Type, e.Code)
		}
	})
	t.Run("transport failure names the target", func(t *testing.T) {
		e, resp := call(t, "hangup", false)
		if e.StatusCode != 502 || resp.Header.Get("x-cairn-target") != "up/up-model" {
			t.Errorf("status %d x-cairn-target %q; want 502 from up/up-model", e.StatusCode, resp.Header.Get("x-cairn-target"))
		}
	})
	t.Run("non-JSON 503 becomes OpenAI-shaped", func(t *testing.T) {
		e, resp := call(t, "plain503", false)
		if e.StatusCode != 503 || !strings.Contains(e.Message, "model is loading") || e.Code == "" {
			t.Errorf("status %d code %q message %q; want 503 with the upstream's text", e.StatusCode, e.Code, e.Message)
		}
		if resp.Header.Get("retry-after") != "7" || resp.Header.Get("x-cairn-target") != "up/up-model" {
			t.Errorf("headers %v; want retry-after 7 and x-cairn-target", resp.Header)
		}
	})
}

func TestInteropProviderIDFromBody(t *testing.T) {
	up := startCountingUpstream(t, 0)
	up.set(nil, true) // no request-ID header, like many compatible servers
	g := startInteropGateway(t, up.addr)
	c := sdkClient(g.api)
	p := openai.ChatCompletionNewParams{
		Model:    "chat",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		User:     openai.String("noid"),
	}
	var raw *http.Response
	resp, err := c.Chat.Completions.New(context.Background(), p, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get("x-cairn-provider-request-id"); got == "" || got != resp.ID {
		t.Errorf("x-cairn-provider-request-id = %q; want the body's id %q", got, resp.ID)
	}
	if rec := waitRecord(t, g.admin, raw.Header.Get("x-request-id")); rec["provider_request_id"] != resp.ID {
		t.Errorf("record provider_request_id = %v; want %q", rec["provider_request_id"], resp.ID)
	}

	p.User = openai.String("noid-stream")
	s := c.Chat.Completions.NewStreaming(context.Background(), p, option.WithResponseInto(&raw))
	var firstID string
	for s.Next() {
		if firstID == "" {
			firstID = s.Current().ID
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get("x-cairn-provider-request-id"); got == "" || got != firstID {
		t.Errorf("stream x-cairn-provider-request-id = %q; want the first event's id %q", got, firstID)
	}
	if rec := waitRecord(t, g.admin, raw.Header.Get("x-request-id")); rec["provider_request_id"] != firstID {
		t.Errorf("stream record provider_request_id = %v; want %q", rec["provider_request_id"], firstID)
	}
}
