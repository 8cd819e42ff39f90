package main

// Issue 14.1: pooled upstream connections that the upstream closed while
// idle (short keep-alive, a restart) must not turn into 502s, and no
// request may reach the upstream twice.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func sdkClient(base string) openai.Client {
	return openai.NewClient(option.WithBaseURL(base+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

// sdkRound sends n requests at once through the SDK, half of them streamed,
// each with a unique user; it returns the errors.
func sdkRound(c openai.Client, tag string, n int) []error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("%s-%d", tag, i)
			p := openai.ChatCompletionNewParams{
				Model:    "chat",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
				User:     openai.String(user),
			}
			if i%2 == 0 {
				resp, err := c.Chat.Completions.New(context.Background(), p)
				if err == nil && (len(resp.Choices) == 0 || resp.Choices[0].Message.Content != "hello") {
					err = fmt.Errorf("unexpected completion %+v", resp)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", user, err)
				}
				return
			}
			s := c.Chat.Completions.NewStreaming(context.Background(), p)
			var text string
			for s.Next() {
				if ch := s.Current(); len(ch.Choices) > 0 {
					text += ch.Choices[0].Delta.Content
				}
			}
			if err := s.Err(); err != nil {
				errs <- fmt.Errorf("%s stream: %w", user, err)
			} else if text != "hello" {
				errs <- fmt.Errorf("%s stream: text %q", user, text)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var out []error
	for e := range errs {
		out = append(out, e)
	}
	return out
}

func TestInteropStaleUpstreamConnections(t *testing.T) {
	t.Run("upstream closes idle connections after 50ms", func(t *testing.T) {
		t.Parallel()
		up := startCountingUpstream(t, 50*time.Millisecond)
		g := startInteropGateway(t, up.addr)
		c := sdkClient(g.api)
		var errs []error
		for round := range 6 {
			errs = append(errs, sdkRound(c, fmt.Sprintf("idle%d", round), 6)...)
			time.Sleep(150 * time.Millisecond) // every pooled connection is now closed by the upstream
		}
		if len(errs) > 0 {
			t.Errorf("%d client errors, want 0: %v", len(errs), errs)
		}
		if d := up.duplicates(); len(d) > 0 {
			t.Errorf("upstream received requests twice: %v", d)
		}
		resent := staleResends(t, g.admin)
		if resent == 0 {
			t.Errorf("cairn_upstream_stale_resends_total = 0; want the stale connections counted")
		}
		t.Logf("figure: 36 requests (18 streamed) 150 ms apart over an upstream closing idle connections after 50 ms: %d errors, %d resent on a fresh connection", len(errs), resent)
	})

	t.Run("upstream restarts between requests", func(t *testing.T) {
		t.Parallel()
		up := startCountingUpstream(t, time.Minute)
		g := startInteropGateway(t, up.addr)
		c := sdkClient(g.api)
		var errs []error
		for round := range 5 {
			errs = append(errs, sdkRound(c, fmt.Sprintf("restart%d", round), 8)...)
			up.restart(t)
		}
		if len(errs) > 0 {
			t.Errorf("%d client errors, want 0: %v", len(errs), errs)
		}
		if d := up.duplicates(); len(d) > 0 {
			t.Errorf("upstream received requests twice: %v", d)
		}
		t.Logf("figure: 40 requests (20 streamed) across 5 upstream restarts: %d errors, %d resent on a fresh connection", len(errs), staleResends(t, g.admin))
	})

	t.Run("node upstream with its default 5s keep-alive", func(t *testing.T) {
		t.Parallel()
		node, err := exec.LookPath("node")
		if err != nil {
			t.Skip("node is not installed (scripts/test installs Debian's nodejs)")
		}
		script := filepath.Join(t.TempDir(), "upstream.js")
		if err := os.WriteFile(script, []byte(nodeUpstream), 0o600); err != nil {
			t.Fatal(err)
		}
		// Port 0: the script prints the port it got.
		p := startCommand(t, exec.Command(node, script, "127.0.0.1"), "node upstream", nil)
		addr := "127.0.0.1:" + waitOutput(t, p, regexp.MustCompile(`listening ([0-9]+)\n`))[1]
		waitHTTP(t, p, "http://"+addr+"/stats")
		g := startInteropGateway(t, addr)
		c := sdkClient(g.api)
		var errs []error
		// Idle 6.5 s: Node closed the connections (Node 20 announces
		// timeout=5 and closes at about 6 s; the old code's 502s);
		// idle 4.6 s: inside Node's 5 s, but past the gateway's budget
		// for an announced "Keep-Alive: timeout=5" (4 s), so the gateway
		// never races Node's close.
		for i, gap := range []time.Duration{0, 6500 * time.Millisecond, 4600 * time.Millisecond} {
			time.Sleep(gap)
			errs = append(errs, sdkRound(c, fmt.Sprintf("node%d", i), 4)...)
		}
		if len(errs) > 0 {
			t.Errorf("%d client errors, want 0: %v", len(errs), errs)
		}
		stats := getBody(t, "http://"+addr+"/stats")
		if strings.Contains(stats, `"dup":true`) {
			t.Errorf("node upstream received a request twice: %s", stats)
		}
		t.Logf("figure: node %s upstream (keep-alive 5 s), 12 requests after 6.5 s and 4.6 s idle: %d errors, %d resent on a fresh connection; stats %s", strings.TrimSpace(nodeVersion(node)), len(errs), staleResends(t, g.admin), stats)
	})
}

func staleResends(t *testing.T, admin string) int {
	t.Helper()
	line := grepLines(metrics(t, admin), `cairn_upstream_stale_resends_total{provider="up"}`)
	var n int
	if _, err := fmt.Sscanf(strings.TrimPrefix(line, `cairn_upstream_stale_resends_total{provider="up"} `), "%d", &n); err != nil {
		t.Fatalf("metrics line %q: %v", line, err)
	}
	return n
}

func nodeVersion(node string) string {
	b, _ := exec.Command(node, "--version").Output()
	return string(b)
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// nodeUpstream is an OpenAI-compatible chat server on Node's http module
// with its defaults (keepAliveTimeout 5 s, announced as "Keep-Alive:
// timeout=5"). GET /stats reports the requests seen per user.
const nodeUpstream = `
const http = require('http');
const seen = {};
let dup = false;
const srv = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ dup, users: Object.keys(seen).length, keepAliveTimeout: srv.keepAliveTimeout }));
    return;
  }
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    let r = {};
    try { r = JSON.parse(body); } catch (e) {}
    seen[r.user] = (seen[r.user] || 0) + 1;
    if (seen[r.user] > 1) dup = true;
    const id = 'chatcmpl-node-' + r.user;
    res.setHeader('x-request-id', 'node-' + r.user);
    if (r.stream) {
      res.setHeader('content-type', 'text/event-stream');
      const ev = (delta, fin) => 'data: ' + JSON.stringify({ id, object: 'chat.completion.chunk', created: 1, model: r.model,
        choices: [{ index: 0, delta, finish_reason: fin }] }) + '\n\n';
      res.write(ev({ role: 'assistant', content: 'hel' }, null));
      res.write(ev({ content: 'lo' }, null));
      res.write(ev({}, 'stop'));
      res.end('data: [DONE]\n\n');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ id, object: 'chat.completion', created: 1, model: r.model,
      choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } }));
  });
});
srv.listen(0, process.argv[2], () => console.log('listening ' + srv.address().port));
`
