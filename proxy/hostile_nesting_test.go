package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestHostileUpstreamErrorNesting has the upstream answer with error
// statuses whose bodies nest millions of levels deep. Issue 12.1: every
// byte of an upstream response is checked without recursion before a
// recursive reader sees it; the error path looked for a message with
// gjson.ValidBytes, which recurses once per level and overflows the stack
// (a fatal error no recover catches). The gateway answers, stays up and
// records every request.
func TestHostileUpstreamErrorNesting(t *testing.T) {
	const n = 5_600_000
	bodies := map[string]string{
		"open-brackets": strings.Repeat("[", n),
		"balanced":      strings.Repeat("[", n/2) + strings.Repeat("]", n/2),
		"open-objects":  strings.Repeat(`{"a":`, n/5),
		"deep-error":    `{"error":` + strings.Repeat("[", n),
	}
	statuses := []int{500, 429, 400, 404}
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		body := string(ctx.PostBody())
		for k, v := range bodies {
			for _, st := range statuses {
				if strings.Contains(body, fmt.Sprintf("%s/%d", k, st)) {
					ctx.SetStatusCode(st)
					ctx.SetContentType("application/json")
					ctx.SetBodyString(v)
					return
				}
			}
		}
		okCompletion(ctx)
	})
	tg := startGateway(t, fmt.Sprintf(hostileConfig, up), hostileEnv)
	sent := 0
	for name := range bodies {
		for _, st := range statuses {
			for _, stream := range []string{"false", "true"} {
				t.Run(fmt.Sprintf("%s/%d/stream=%s", name, st, stream), func(t *testing.T) {
					body := fmt.Sprintf(`{"model":"support-bot","stream":%s,"messages":[{"role":"user","content":"%s/%d"}]}`, stream, name, st)
					r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", body)
					sent++
					if r.status < 400 {
						t.Fatalf("status %d; want the upstream's error: %.300s", r.status, r.body)
					}
				})
			}
		}
	}
	if r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", "")); r.status != 200 {
		t.Fatalf("after the bombs: status %d: %s", r.status, r.body)
	}
	tg.records(t, sent+1)
}

// TestHostileScoresNesting posts nesting bombs to POST /admin/scores
// (issue 12.1 names scores among the inputs checked without recursion):
// each is refused with 400 and the gateway stays up.
func TestHostileScoresNesting(t *testing.T) {
	up := startUpstream(t, okCompletion)
	tg := startGateway(t, fmt.Sprintf(hostileConfig, up), hostileEnv)
	// The admin body limit is 8 MiB: the bombs stay under it, unbalanced
	// where the shape allows (a validator recurses before it finds that
	// the brackets never close).
	const n = 8_000_000
	bombs := map[string]string{
		"array of arrays":    strings.Repeat("[", n) + "]",
		"balanced arrays":    "[" + strings.Repeat("[", n/2-1) + strings.Repeat("]", n/2-1) + "]",
		"object":             `{"request_id":"x","name":"q","value":1,"x":` + strings.Repeat("[", n) + `}`,
		"object in an array": `[{"request_id":"x","name":"q","value":1,"x":` + strings.Repeat("[", n) + `}]`,
		"ndjson lines":       "{\"a\":1}\n{\"x\":" + strings.Repeat("[", n) + "}\n",
		"open object":        strings.Repeat(`{"a":`, n/5) + "}",
	}
	for name, b := range bombs {
		t.Run(name, func(t *testing.T) {
			r := do(t, "POST", tg.admin+"/admin/scores", "admin-token-1", b)
			if r.status != 400 && r.status != 200 {
				t.Fatalf("status %d; want 400 (or 200 naming the refused items): %.300s", r.status, r.body)
			}
			if r.status == 200 && !strings.Contains(string(r.body), "rejected") {
				t.Errorf("200 without a rejected item: %.300s", r.body)
			}
		})
	}
	if r := do(t, "GET", tg.admin+"/healthz", "admin-token-1", ""); r.status != 200 {
		t.Fatalf("after the bombs: /healthz %d", r.status)
	}
}

// TestHostileStreamEventNesting has the upstream stream events nested
// millions deep in the places the gateway reads: an error event's error,
// a {"type":"error"} event, a delta's content and tool calls, usage.
func TestHostileStreamEventNesting(t *testing.T) {
	const n = 2_000_000
	deep := strings.Repeat("[", n) + strings.Repeat("]", n)
	open := strings.Repeat("[", n)
	events := map[string]string{
		"error":      `{"error":` + deep + `}`,
		"error-open": `{"error":` + open,
		"type-error": `{"type":"error","error":` + deep + `}`,
		"content":    `{"choices":[{"index":0,"delta":{"content":` + deep + `}}]}`,
		"tool-calls": `{"choices":[{"index":0,"delta":{"tool_calls":` + deep + `}}]}`,
		"usage":      `{"choices":[],"usage":` + deep + `}`,
		"choices":    `{"choices":` + deep + `}`,
		"objects":    strings.Repeat(`{"a":`, n/5) + strings.Repeat("}", n/5),
	}
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		body := string(ctx.PostBody())
		for k, v := range events {
			if strings.Contains(body, `"`+k+`"`) {
				ctx.SetContentType("text/event-stream")
				ctx.SetBodyString(`data: {"id":"s","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}` + "\n\ndata: " + v + "\n\ndata: [DONE]\n\n")
				return
			}
		}
		okCompletion(ctx)
	})
	tg := startGateway(t, fmt.Sprintf(hostileConfig, up), hostileEnv)
	sent := 0
	for name := range events {
		t.Run(name, func(t *testing.T) {
			body := fmt.Sprintf(`{"model":"support-bot","stream":true,"messages":[{"role":"user","content":%q}],"response_format":{"type":"json_object"}}`, name)
			r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", body)
			sent++
			if r.status != 200 && r.status != 502 {
				t.Fatalf("status %d: %.300s", r.status, r.body)
			}
		})
	}
	if r := do(t, "POST", tg.api+"/v1/chat/completions", "gw-app-key", chat("support-bot", "")); r.status != 200 {
		t.Fatalf("after the bombs: status %d: %s", r.status, r.body)
	}
	tg.records(t, sent+1)
}
