package proxy

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestHostileLegacyCompletionsNumbers: the legacy /v1/completions endpoint
// refuses non-finite and out-of-range numbers as chat does (issue 12.2).
// "temperature": 1e999 was forwarded to the upstream with a 200 and its
// record said "temperature": 0.
func TestHostileLegacyCompletionsNumbers(t *testing.T) {
	var upstreamSaw atomic.Int64
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		upstreamSaw.Add(1)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"id":"c1","object":"text_completion","model":"upstream-model","choices":[{"index":0,"text":"ok","finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	})
	tg := startGateway(t, fmt.Sprintf(hostileConfig, up), hostileEnv)
	tests := []struct{ param, value string }{
		{"temperature", "1e999"},
		{"temperature", "-1e999"},
		{"temperature", "2.5"},
		{"top_p", "1e999"},
		{"frequency_penalty", "-1e400"},
		{"presence_penalty", "3"},
		{"n", "1e999"},
		{"n", "0.5"},
		{"logprobs", "6"},
		{"best_of", "1e999"},
		{"seed", "1e999"},
		{"max_tokens", "1e999"},
	}
	for _, tt := range tests {
		t.Run(tt.param+"="+tt.value, func(t *testing.T) {
			r := do(t, "POST", tg.api+"/v1/completions", "gw-app-key", `{"model":"support-bot","prompt":"x","`+tt.param+`":`+tt.value+`}`)
			if r.status != 400 {
				t.Fatalf("status %d; want 400: %s", r.status, r.body)
			}
			msg, typ, param := apiErrorOf(t, r)
			if typ != "invalid_request_error" || param != tt.param || !strings.Contains(msg, tt.param) {
				t.Errorf("error %s; want invalid_request_error naming %q", r.body, tt.param)
			}
			id := r.header.Get("x-request-id")
			var a result
			for range 100 { // the record is written asynchronously
				if a = do(t, "GET", tg.admin+"/admin/requests/"+id, "admin-token-1", ""); a.status != 404 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if a.status != 200 {
				t.Fatalf("GET /admin/requests/%s: %d %s", id, a.status, a.body)
			}
		})
	}
	if n := upstreamSaw.Load(); n != 0 {
		t.Errorf("the upstream saw %d refused requests", n)
	}
	ok := do(t, "POST", tg.api+"/v1/completions", "gw-app-key", `{"model":"support-bot","prompt":"x","temperature":2,"top_p":0,"n":1,"logprobs":5,"best_of":2,"seed":-7}`)
	if ok.status != 200 {
		t.Fatalf("in-range numbers: %d %s", ok.status, ok.body)
	}
}
