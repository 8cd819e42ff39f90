package proxy

// Issue 12.4: an upstream that echoes the provider key (in a 200 body, in a
// stream event shaped {"type":"error",...}, in content, in a header, in any
// JSON string encoding, split across two reads) must not make the gateway
// hand it to the client or write it anywhere: client responses, data_dir,
// logs and admin answers hold none of the gateway's secrets.

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
)

// leakKey holds a '/' so that encoders that escape it (\/) write another
// form than the plain one.
const leakKey = "sk-proj-LEAK/0123456789abcdefghijKLMNOPQRST"

// escapedForms returns leakKey as JSON encoders may write it: '/' as \/,
// every character as \uXXXX, and a mix.
func escapedForms(s string) []string {
	var allU, mixed strings.Builder
	for _, u := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&allU, `\u%04X`, u)
	}
	for i, r := range s {
		if i%3 == 0 {
			fmt.Fprintf(&mixed, `\u%04x`, r)
		} else if r == '/' {
			mixed.WriteString(`\/`)
		} else {
			mixed.WriteRune(r)
		}
	}
	return []string{strings.ReplaceAll(s, "/", `\/`), allU.String(), mixed.String()}
}

// startLeakyUpstream answers by the request's "user": each case puts the
// provider key somewhere else in its answer.
func startLeakyUpstream(t *testing.T) string {
	forms := escapedForms(leakKey)
	completion := func(content string) string {
		return `{"id":"c1","object":"chat.completion","system_fingerprint":"` + forms[0] + `","choices":[{"index":0,"message":{"role":"assistant","content":"` +
			content + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}}`
	}
	chunk := func(content string) string {
		return `data: {"id":"s1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}` + "\n\n"
	}
	return startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		user := gjson.GetBytes(ctx.PostBody(), "user").String()
		ctx.Response.Header.Set("x-request-id", "req-"+leakKey)
		ctx.Response.Header.Set("openai-model", leakKey)
		switch user {
		case "body200":
			ctx.SetContentType("application/json")
			ctx.SetBodyString(completion("your key is " + leakKey))
		case "escaped":
			ctx.SetContentType("application/json")
			ctx.SetBodyString(completion("a: " + forms[1] + " b: " + forms[2]))
		case "tool":
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"id":"c2","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"k\":\"` +
				forms[2] + `\"}"}}]},"finish_reason":"tool_calls"}]}`)
		case "error400":
			ctx.SetStatusCode(400)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"error":{"message":"Incorrect API key provided: ` + forms[0] + `","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
		case "stream-deltas":
			// The key cut across three content chunks: no single event
			// holds it, the client's joined content would.
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyString(chunk("here: sk-proj-LE") + chunk("AK/0123456789") + chunk("abcdefghijKLMNOPQRST done") +
				`data: {"id":"s1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n" + "data: [DONE]\n\n")
		case "stream-content", "stream-error":
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				// The key is cut in two writes with a pause between, so
				// the gateway reads it in two pieces.
				ev := chunk("here: " + leakKey)
				if user == "stream-error" {
					ev = chunk("hello") + `data: {"type":"error","error":{"type":"invalid_request_error","message":"key ` + forms[1] + ` revoked","key":"` + leakKey + `"}}` + "\n\n"
				}
				cut := strings.Index(ev, "LEAK/") + 3
				w.WriteString(ev[:cut])
				w.Flush()
				time.Sleep(30 * time.Millisecond)
				w.WriteString(ev[cut:])
				w.WriteString(`data: {"id":"s1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
				w.WriteString("data: [DONE]\n\n")
				w.Flush()
			})
		}
	})
}

const secretLeakConfig = `
data_dir: {{DATA}}
admin_token_env: ADMIN_TOKEN
providers:
  - { name: leaky, base_url: "http://%s/v1", api_key_env: PROVIDER_KEY, timeout: 2s }
keys:
  - { name: app, key_env: APP_KEY }
routes:
  - { name: chat, targets: [ { provider: leaky } ] }
`

func TestReliabilitySecretEchoLeaksNowhere(t *testing.T) {
	addr := startLeakyUpstream(t)
	env := map[string]string{"PROVIDER_KEY": leakKey, "APP_KEY": leakGatewayKey, "ADMIN_TOKEN": leakAdminToken}
	tg, logs := startLogged(t, fmt.Sprintf(secretLeakConfig, addr), env)
	oracle := capture.NewSecrets(leakKey, leakGatewayKey, leakAdminToken)
	plain := append([]string{leakKey, leakGatewayKey, leakAdminToken, "0123456789abcdefghij"}, escapedForms(leakKey)...)
	leaks := func(b []byte) []string {
		var found []string
		for _, p := range plain {
			if strings.Contains(string(b), p) {
				found = append(found, p)
			}
		}
		if oracle.Contains(b) && len(found) == 0 {
			found = append(found, "an escaped form")
		}
		return found
	}

	type sent struct {
		what string
		r    result
	}
	var got []sent
	for _, user := range []string{"body200", "escaped", "tool", "error400", "stream-content", "stream-error", "stream-deltas"} {
		extra := `"user":"` + user + `"`
		if strings.HasPrefix(user, "stream") {
			extra += `,"stream":true`
		}
		got = append(got, sent{user, do(t, "POST", tg.api+"/v1/chat/completions", leakGatewayKey, chat("chat", extra))})
	}
	// The client's own secret, echoed back in a 404's message.
	got = append(got, sent{"unknown model", do(t, "POST", tg.api+"/v1/chat/completions", leakGatewayKey, chat(leakGatewayKey, ""))})

	for _, s := range got {
		if s.r.status == 0 {
			t.Fatalf("%s: no answer", s.what)
		}
		if f := leaks(s.r.body); len(f) > 0 {
			t.Errorf("%s: the response body (%d) holds %q: %.400s", s.what, s.r.status, f, s.r.body)
		}
		if events, _ := sseEvents(s.r.body); len(events) > 0 {
			var joined strings.Builder
			for _, ev := range events {
				joined.WriteString(gjson.Get(ev, "choices.0.delta.content").String())
			}
			if f := leaks([]byte(joined.String())); len(f) > 0 || strings.Contains(joined.String(), "LEAK/0123") {
				t.Errorf("%s: the streamed content, joined, holds the key: %q", s.what, joined.String())
			}
		}
		for name, vs := range s.r.header {
			for _, v := range vs {
				if f := leaks([]byte(v)); len(f) > 0 {
					t.Errorf("%s: response header %s holds %q", s.what, name, f)
				}
			}
		}
	}
	// The redaction is visible, and did not eat the rest of the answer.
	for _, s := range got[:7] {
		if !strings.Contains(string(s.r.body), capture.PlaceholderSecret) {
			t.Errorf("%s (%d): no %s placeholder in %.300s", s.what, s.r.status, capture.PlaceholderSecret, s.r.body)
		}
	}
	if b := string(got[4].r.body); !strings.Contains(b, "[DONE]") || !strings.Contains(b, "here: ") {
		t.Errorf("stream-content: %q; want the content with the key replaced and [DONE]", b)
	}

	recs := tg.records(t, len(got))
	exposed := map[string][]byte{
		"/metrics":         adminGet(t, tg, "/metrics", leakAdminToken).body,
		"/admin/state":     adminGet(t, tg, "/admin/state", leakAdminToken).body,
		"/admin/incidents": adminGet(t, tg, "/admin/incidents", leakAdminToken).body,
	}
	for _, r := range recs {
		exposed["/admin/requests/"+r.GatewayRequestID] = adminGet(t, tg, "/admin/requests/"+r.GatewayRequestID, leakAdminToken).body
	}
	for where, b := range exposed {
		if f := leaks(b); len(f) > 0 {
			t.Errorf("%s holds %q", where, f)
		}
	}
	// Stop the gateway so every file is flushed, then read data_dir.
	if err := tg.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	files := 0
	filepath.WalkDir(filepath.Join(tg.dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		files++
		if f := leaks(b); len(f) > 0 {
			t.Errorf("%s holds %q", p, f)
		}
		return nil
	})
	if files == 0 {
		t.Errorf("data_dir is empty; the check is vacuous")
	}
	if f := leaks([]byte(logs.String())); len(f) > 0 {
		t.Errorf("the logs hold %q", f)
	}
	t.Logf("figure: secret echo: %d responses, %d records, %d admin answers, %d files, %d log bytes: 0 secrets", len(got), len(recs), len(exposed), files, len(logs.String()))
}
