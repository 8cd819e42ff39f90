package main

// A small OpenAI-compatible upstream for the interop tests (issue 14): it
// counts every request it received by its "user" value, so a test can prove
// no request reached it twice, and it can close idle connections early,
// restart on the same port, answer with an error, or omit its request-ID
// header.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

type countingUpstream struct {
	addr string
	// idle is the server's idle keep-alive timeout (net/http IdleTimeout).
	idle time.Duration

	mu     sync.Mutex
	seen   map[string]int
	srv    *http.Server
	conns  int
	failer func(w http.ResponseWriter, user string) bool
	noID   bool
}

func startCountingUpstream(t *testing.T, idle time.Duration) *countingUpstream {
	t.Helper()
	u := &countingUpstream{idle: idle, seen: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	u.serve(ln)
	t.Cleanup(func() { u.stop() })
	return u
}

func (u *countingUpstream) serve(ln net.Listener) {
	srv := &http.Server{
		Handler:     http.HandlerFunc(u.handle),
		IdleTimeout: u.idle,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.mu.Lock()
				u.conns++
				u.mu.Unlock()
			}
		},
	}
	u.mu.Lock()
	u.srv = srv
	u.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // ends with Close
}

func (u *countingUpstream) stop() {
	u.mu.Lock()
	srv := u.srv
	u.mu.Unlock()
	_ = srv.Close()
}

// restart closes the server and every connection it holds (as a process
// that exits would) and serves again on the same address.
func (u *countingUpstream) restart(t *testing.T) {
	t.Helper()
	u.stop()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", u.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart upstream on %s: %v", u.addr, err)
	}
	u.serve(ln)
}

// duplicates returns every user value received more than once.
func (u *countingUpstream) duplicates() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var d []string
	for k, n := range u.seen {
		if n > 1 {
			d = append(d, fmt.Sprintf("%s×%d", k, n))
		}
	}
	return d
}

func (u *countingUpstream) received(user string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[user]
}

func (u *countingUpstream) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Model  string `json:"model"`
		User   string `json:"user"`
		Stream bool   `json:"stream"`
		Prompt any    `json:"prompt"`
	}
	_ = json.Unmarshal(body, &req)
	u.mu.Lock()
	u.seen[req.User]++
	n := u.seen[req.User]
	failer, noID := u.failer, u.noID
	u.mu.Unlock()
	if failer != nil && failer(w, req.User) {
		return
	}
	id := fmt.Sprintf("chatcmpl-%s-%d", req.User, n)
	if !noID {
		w.Header().Set("x-request-id", "upreq-"+req.User)
	}
	if strings.HasSuffix(r.URL.Path, "/completions") && !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		if req.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, text := range []string{"o", "k"} {
				fmt.Fprintf(w, "data: {\"id\":\"cmpl-%s\",\"object\":\"text_completion\",\"created\":1,\"model\":%q,\"choices\":[{\"text\":%q,\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n", req.User, req.Model, text)
				w.(http.Flusher).Flush()
			}
			fmt.Fprintf(w, "data: {\"id\":\"cmpl-%s\",\"object\":\"text_completion\",\"created\":1,\"model\":%q,\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n", req.User, req.Model)
			fmt.Fprint(w, "data: {\"id\":\"cmpl-x\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n")
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"cmpl-%s","object":"text_completion","created":1,"model":%q,"choices":[{"text":"ok","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`, req.User, req.Model)
		return
	}
	if req.Stream {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i, ev := range []string{
			`{"id":%q,"object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{"role":"assistant","content":"hel"},"finish_reason":null}]}`,
			`{"id":%q,"object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}`,
			`{"id":%q,"object":"chat.completion.chunk","created":1,"model":%q,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		} {
			if i > 0 {
				time.Sleep(5 * time.Millisecond)
			}
			fmt.Fprintf(w, "data: "+ev+"\n\n", id, req.Model)
			fl.Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q,"object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`, id, req.Model)
}

// interopConfig is a gateway with one provider at %[4]s and one route
// "chat" (%[1]s API, %[2]s admin, %[3]s data dir).
const interopConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
release: "interop"
providers:
  - { name: up, base_url: "http://%[4]s/v1", api_key_env: INTEROP_PROVIDER_KEY, timeout: 5s }
routes:
  - name: chat
    targets: [ { provider: up, model: up-model } ]
`

func startInteropGateway(t *testing.T, upstream string) *relGateway {
	t.Helper()
	cfg := strings.ReplaceAll(interopConfig, "%[4]s", upstream)
	return startRelGateway(t, cfg, relEnv("INTEROP_PROVIDER_KEY=sk-interop-provider-secret"))
}

var errNoDone = errors.New("stream ended without [DONE]")

// waitRecord fetches a capture record through the admin API.
func waitRecord(t *testing.T, admin, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(startupWait)
	for {
		r, err := http.Get(admin + "/admin/requests/" + id)
		if err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode == 200 {
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatalf("record %s: %v: %s", id, err, b)
				}
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("record %s not found through the admin API", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (u *countingUpstream) set(failer func(w http.ResponseWriter, user string) bool, noID bool) {
	u.mu.Lock()
	u.failer, u.noID = failer, noID
	u.mu.Unlock()
}

func recordJSON(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// postJSON posts body to url with no key.
func postJSON(url, body string) reply {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: b}
}
