package main

// Issue 14.1: "honour the upstream's Keep-Alive: timeout= where it gives
// one". An upstream that announces timeout=1 (and, here, never actually
// closes) proves the gateway reads the header through the real binary: a
// connection idle past the budget (half a second for 1 s) is dropped before
// a byte is written and the request goes on a new one; a connection idle
// less is reused. Buffered and streamed requests (two pools) alike.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

func TestInteropKeepAliveHeaderHonoured(t *testing.T) {
	up := startCountingUpstream(t, time.Minute)
	up.set(func(w http.ResponseWriter, _ string) bool {
		w.Header().Set("Keep-Alive", "timeout=1")
		return false // the ordinary answer, with the header
	}, false)
	g := startInteropGateway(t, up.addr)
	c := sdkClient(g.api)
	ctx := context.Background()
	call := func(stream bool, user string) {
		t.Helper()
		p := openai.ChatCompletionNewParams{
			Model:    "chat",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			User:     openai.String(user),
		}
		if !stream {
			if _, err := c.Chat.Completions.New(ctx, p); err != nil {
				t.Fatalf("%s: %v", user, err)
			}
			return
		}
		s := c.Chat.Completions.NewStreaming(ctx, p)
		for s.Next() {
		}
		if err := s.Err(); err != nil {
			t.Fatalf("%s: %v", user, err)
		}
	}
	opened := func() int {
		up.mu.Lock()
		defer up.mu.Unlock()
		return up.conns
	}
	for _, stream := range []bool{false, true} {
		name := map[bool]string{false: "buffered", true: "streamed"}[stream]
		before, resentBefore := opened(), staleResends(t, g.admin)
		call(stream, name+"-1") // a new connection, which learns timeout=1
		call(stream, name+"-2") // idle ~0: reused
		if n := opened() - before; n != 1 {
			t.Errorf("%s: %d connections for two back-to-back requests; want 1 (reused)", name, n)
		}
		time.Sleep(800 * time.Millisecond) // past the 500 ms budget, inside the upstream's 1 s
		call(stream, name+"-3")
		if n := opened() - before; n != 2 {
			t.Errorf("%s: %d connections after 800 ms idle with Keep-Alive: timeout=1; want 2 (the idle one dropped)", name, n)
		}
		if r := staleResends(t, g.admin) - resentBefore; r != 1 {
			t.Errorf("%s: %d stale resends; want 1 (the connection past its keep-alive budget)", name, r)
		}
	}
	if d := up.duplicates(); len(d) > 0 {
		t.Errorf("upstream received requests twice: %v", d)
	}
}
