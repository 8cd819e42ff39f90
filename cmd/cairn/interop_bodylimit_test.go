package main

// Issue 14.2: a body over server.max_body_bytes reaches the SDK as the 413,
// not as a connection reset, and the SDK does not upload it again.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func TestInteropOversizedBodyIs413(t *testing.T) {
	up := startCountingUpstream(t, 0)
	g := startInteropGateway(t, up.addr)
	var attempts atomic.Int32
	c := openai.NewClient(option.WithBaseURL(g.api+"/v1"), option.WithAPIKey("unused"),
		option.WithMaxRetries(2), // the SDK's default: it retries connection errors
		option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			attempts.Add(1)
			return next(r)
		}))
	big := strings.Repeat("lorem ipsum ", 9<<20/12) // 9 MiB > the 8 MiB default
	for i := range 3 {
		attempts.Store(0)
		_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model:    "chat",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(big)},
			User:     openai.String("big"),
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("try %d: err = %v (%T); want a 413 *openai.Error, not a connection error", i, err, err)
		}
		if apiErr.StatusCode != http.StatusRequestEntityTooLarge || apiErr.Code != "request_too_large" {
			t.Errorf("try %d: status %d code %q; want 413 request_too_large", i, apiErr.StatusCode, apiErr.Code)
		}
		if v := apiErr.Response.Header.Get("x-should-retry"); v != "false" {
			t.Errorf("try %d: x-should-retry = %q; want false", i, v)
		}
		if n := attempts.Load(); n != 1 {
			t.Errorf("try %d: the SDK sent the request %d times; want 1", i, n)
		}
	}
	if n := up.received("big"); n != 0 {
		t.Errorf("upstream received the oversized request %d times; want 0", n)
	}
	// A client that uploads the whole body before it reads (as the Python
	// and JS SDKs' HTTP stacks do) must be able to finish the upload and
	// then read the 413: a reset would lose it.
	for i := range 3 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(g.api, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		body := `{"model":"chat","messages":[{"role":"user","content":"` + big + `"}]}`
		head := fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(conn, head+body); err != nil {
			t.Errorf("upload %d: %v; want the whole body accepted before the 413", i, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("upload %d: reading the answer: %v; want the 413", i, err)
		} else {
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 413 || !strings.Contains(string(b), "request_too_large") {
				t.Errorf("upload %d: %d %s; want 413 request_too_large", i, resp.StatusCode, b)
			}
		}
		conn.Close()
	}
	// The gateway still serves on new connections afterwards.
	if errs := sdkRound(sdkClient(g.api), "after413", 2); len(errs) > 0 {
		t.Errorf("after the 413s: %v", errs)
	}
}
