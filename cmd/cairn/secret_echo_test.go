package main

// Issue 12.4 against the real binary: an upstream that echoes the provider
// key in a 200 body, in a {"type":"error",...} stream event and in content
// (cut across chunks and reads), with Redis behind a password. The
// provider key, the gateway key, the admin token and the Redis password
// are then found nowhere: client responses, data_dir, the process's debug
// log, admin answers, Redis.

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

const (
	echoProviderKey = "sk-proj-ECHO/0123456789abcdefghijKLMNOP"
	echoGatewayKey  = "gw-echo-CANARY-55aa9911"
	echoAdminToken  = "adm-echo-CANARY-77bb0022"
	echoRedisPass   = "redis-echo-CANARY-pw-3141"
)

const secretEchoConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
admin_token_env: ECHO_ADMIN
redis_url: "redis://:%[5]s@%[6]s/0"
providers:
  - { name: leaky, base_url: "http://%[4]s/v1", api_key_env: ECHO_PROVIDER_KEY, timeout: 3s }
keys:
  - { name: app, key_env: ECHO_APP_KEY }
routes:
  - { name: chat, targets: [ { provider: leaky } ] }
`

// startPasswordRedis runs redis-server with requirepass on a port of its
// own and returns its address.
func startPasswordRedis(t *testing.T, pass string) string {
	t.Helper()
	return redistest.StartArgs(t, "--requirepass", pass).Addr
}

func TestReliabilitySecretEchoBinary(t *testing.T) {
	sse := func(content string) string {
		return `data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}` + "\n\n"
	}
	const stop = `data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n"
	escaped := strings.ReplaceAll(echoProviderKey, "/", `\/`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("x-request-id", "req-"+echoProviderKey)
		switch gjson.GetBytes(ctx.PostBody(), "user").String() {
		case "body":
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"key ` +
				escaped + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
		case "error-event":
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				ev := sse("hi") + `data: {"type":"error","error":{"message":"bad key ` + echoProviderKey + `"}}` + "\n\n"
				cut := strings.Index(ev, "ECHO/")
				w.WriteString(ev[:cut])
				w.Flush()
				time.Sleep(20 * time.Millisecond)
				w.WriteString(ev[cut:] + stop)
			})
		case "content":
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyString(sse("your key: sk-proj-EC") + sse("HO/0123456789abcdef") + sse("ghijKLMNOP, keep it safe") + stop)
		}
	}}
	go up.Serve(ln) //nolint:errcheck // ends at Shutdown
	t.Cleanup(func() { _ = up.Shutdown() })
	redisAddr := startPasswordRedis(t, echoRedisPass)

	dir := t.TempDir()
	dataDir, cfgPath := filepath.Join(dir, "data"), filepath.Join(dir, "cairn.yaml")
	cfg := fmt.Sprintf(secretEchoConfig, anyPort, anyPort, dataDir, ln.Addr().String(), echoRedisPass, redisAddr)
	g := serveConfig(t, cfgPath, cfg, "CAIRN_LOG_LEVEL=debug", "ECHO_PROVIDER_KEY="+echoProviderKey, "ECHO_APP_KEY="+echoGatewayKey,
		"ECHO_ADMIN="+echoAdminToken)

	secrets := []string{echoProviderKey, escaped, "0123456789abcdef", echoGatewayKey, echoAdminToken, echoRedisPass}
	leaks := func(b string) []string {
		var found []string
		for _, s := range secrets {
			if strings.Contains(b, s) {
				found = append(found, s)
			}
		}
		return found
	}
	var ids []string
	for _, user := range []string{"body", "error-event", "content"} {
		extra := `"user":"` + user + `"`
		if user != "body" {
			extra += `,"stream":true`
		}
		r := postChat(g.api, echoGatewayKey, chatBody("chat", extra))
		if r.err != nil || r.status != 200 {
			t.Fatalf("%s: %d %v %s", user, r.status, r.err, r.body)
		}
		ids = append(ids, r.id)
		text := string(r.body)
		var joined strings.Builder
		for line := range strings.SplitSeq(text, "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				joined.WriteString(gjson.Get(d, "choices.0.delta.content").String())
			}
		}
		if f := leaks(text + "\n" + joined.String()); len(f) > 0 {
			t.Errorf("%s: the client got %q: %s", user, f, text)
		}
		if !strings.Contains(text, "[SECRET]") {
			t.Errorf("%s: no [SECRET] placeholder in %s", user, text)
		}
	}
	r := postChat(g.api, echoGatewayKey, chatBody(echoGatewayKey, ""))
	if f := leaks(string(r.body)); r.status != 404 || len(f) > 0 {
		t.Errorf("unknown model: %d %s", r.status, r.body)
	}

	adminGet := func(path string) string {
		req, _ := http.NewRequest("GET", g.admin+path, nil)
		req.Header.Set("Authorization", "Bearer "+echoAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return b.String()
	}
	// Wait for the records, then read what the admin API shows.
	for deadline := time.Now().Add(startupWait); ; time.Sleep(50 * time.Millisecond) {
		if !strings.Contains(adminGet("/admin/requests/"+ids[2]), "no record") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record for %s", ids[2])
		}
	}
	answers := 0
	for _, p := range []string{"/metrics", "/admin/state", "/admin/incidents", "/admin/audit",
		"/admin/requests/" + ids[0], "/admin/requests/" + ids[1], "/admin/requests/" + ids[2]} {
		answers++
		if f := leaks(adminGet(p)); len(f) > 0 {
			t.Errorf("%s holds %q", p, f)
		}
	}

	// Redis: every key name and value.
	rc := redis.NewClient(&redis.Options{Addr: redisAddr, Password: echoRedisPass})
	defer rc.Close()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("redis KEYS: %v %v", keys, err)
	}
	for _, k := range keys {
		var val string
		switch rc.Type(ctx, k).Val() {
		case "string":
			val = rc.Get(ctx, k).Val()
		case "list":
			val = strings.Join(rc.LRange(ctx, k, 0, -1).Val(), "\n")
		case "hash":
			val = fmt.Sprint(rc.HGetAll(ctx, k).Val())
		case "zset":
			val = fmt.Sprint(rc.ZRange(ctx, k, 0, -1).Val())
		case "stream":
			val = fmt.Sprint(rc.XRange(ctx, k, "-", "+").Val())
		}
		if f := leaks(k + "\n" + val); len(f) > 0 {
			t.Errorf("redis key %s holds %q", k, f)
		}
	}

	// SIGTERM drains and flushes; then data_dir and the log.
	_ = g.gw.cmd.Process.Signal(syscall.SIGTERM)
	_ = g.gw.wait()
	files := 0
	filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			files++
			if f := leaks(string(b)); len(f) > 0 {
				t.Errorf("%s holds %q", p, f)
			}
		}
		return nil
	})
	if f := leaks(g.gw.out.String()); len(f) > 0 {
		t.Errorf("the gateway's log holds %q", f)
	}
	t.Logf("figure: secret echo (binary): 4 responses, %d admin answers, %d Redis keys, %d files, %d log bytes: 0 secrets",
		answers, len(keys), files, g.gw.out.Len())
}
