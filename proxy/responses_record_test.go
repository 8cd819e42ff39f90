package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/loadtest"
)

// What a Responses request leaves in its record and on the key's budget.

// TestResponsesMaskingEveryShape: input and instructions are masked in
// every shape the API accepts: a string, message items with string or
// part content, function call outputs; no value reaches the record.
func TestResponsesMaskingEveryShape(t *testing.T) {
	_, _, tg := twoMocks(t)
	secrets := []string{"ann.lee@example.com", "bob.ray@example.com", "cid.roe@example.com", "dee.fox@example.com", "eve.kim@example.com"}
	bodies := []string{
		`{"model":"support-bot","input":"mail ` + secrets[0] + `","instructions":"cc ` + secrets[1] + `"}`,
		`{"model":"support-bot","input":[{"role":"user","content":"mail ` + secrets[2] + `"}]}`,
		`{"model":"support-bot","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"mail ` + secrets[3] + `"}]}]}`,
		`{"model":"support-bot","input":[{"type":"function_call_output","call_id":"c1","output":"{\"email\":\"` + secrets[4] + `\"}"}]}`,
	}
	var ids []string
	for _, b := range bodies {
		r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", b)
		if r.status != 200 {
			t.Fatalf("%d: %s", r.status, r.body)
		}
		ids = append(ids, r.header.Get("x-request-id"))
	}
	for i, id := range ids {
		rec := waitRecord(t, tg, id)
		line := string(rec.Request)
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("record %d holds %s: %s", i, s, line)
			}
		}
		if !strings.Contains(line, "[EMAIL]") {
			t.Errorf("record %d request = %s; want the masked text", i, line)
		}
	}
}

// headerlessUpstream answers /v1/responses without any request ID header,
// plain or streamed, so the gateway must take the resp_ ID from the body.
func headerlessUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"id":"resp_fromthebody","object":"response","status":"completed","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"hi"}]}],"usage":{"input_tokens":4,"output_tokens":1,"total_tokens":5}}`
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if !gjson.GetBytes(ctx.PostBody(), "stream").Bool() {
			ctx.SetContentType("application/json")
			ctx.SetBodyString(body)
			return
		}
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			fmt.Fprintf(w, "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_fromthebody\",\"status\":\"in_progress\"}}\n\n")
			fmt.Fprintf(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"delta\":\"hi\"}\n\n")
			fmt.Fprintf(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":%s}\n\n", body)
		})
	}}
	go srv.Serve(ln) //nolint:errcheck // ends with the listener
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func TestResponsesProviderIDFromBody(t *testing.T) {
	up := headerlessUpstream(t)
	tg := startGateway(t, fmt.Sprintf(baseConfig, up, up), testEnv)
	for _, stream := range []string{"false", "true"} {
		r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", `{"model":"support-bot","input":"x","stream":`+stream+`}`)
		if r.status != 200 || r.header.Get("x-cairn-provider-request-id") != "resp_fromthebody" {
			t.Fatalf("stream=%s: %d, provider id %q", stream, r.status, r.header.Get("x-cairn-provider-request-id"))
		}
		rec := waitRecord(t, tg, r.header.Get("x-request-id"))
		if rec.ProviderRequestID != "resp_fromthebody" || rec.GatewayRequestID == "" || rec.Usage.TotalTokens != 5 {
			t.Errorf("stream=%s: record IDs %q/%q usage %+v", stream, rec.GatewayRequestID, rec.ProviderRequestID, rec.Usage)
		}
	}
}

// TestResponsesStreamBreak: an upstream that dies mid-stream is never
// retried; the client gets a typed error event (which also carries an
// "error" object for SDKs that stop on one) and the record says so.
func TestResponsesStreamBreak(t *testing.T) {
	m1, m2, tg := twoMocks(t)
	m1.SetFault("*", loadtest.Fault{DisconnectAfter: 4})
	r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", responsesBody("support-bot", `"stream":true`))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	names, datas := respEvents(t, r.body)
	last := len(names) - 1
	if len(names) != 5 || names[last] != "error" || gjson.Get(datas[last], "type").Str != "error" ||
		gjson.Get(datas[last], "code").Str != "upstream_error" || gjson.Get(datas[last], "error.code").Str != "upstream_error" {
		t.Fatalf("events %v, last %s", names, datas[last])
	}
	if m2.Requests() != 0 {
		t.Errorf("the fallback was tried after bytes reached the client")
	}
	rec := waitRecord(t, tg, r.header.Get("x-request-id"))
	if rec.Outcome != "upstream_error" || len(rec.Attempts) != 1 {
		t.Errorf("record outcome %q attempts %d", rec.Outcome, len(rec.Attempts))
	}
}

const responsesTPMConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 2s }
keys:
  - { name: small, key_env: APP_KEY, tpm: 200 }
routes:
  - { name: support-bot, targets: [ { provider: mock } ] }
`

// TestResponsesTPM: a key's tokens per minute are charged from the
// Responses usage (input_tokens + output_tokens), plain and streamed,
// until the key is refused with a tokens 429.
func TestResponsesTPM(t *testing.T) {
	_, addr := startMock(t, loadtest.MockOptions{})
	tg := startGateway(t, fmt.Sprintf(responsesTPMConfig, addr), testEnv)
	spent := 0
	for i := range 40 {
		r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", responsesBody("support-bot", fmt.Sprintf(`"stream":%v`, i%2 == 1)))
		if r.status == 429 {
			if !strings.Contains(string(r.body), "tokens per minute") {
				t.Fatalf("429 is not the token limit: %s", r.body)
			}
			if spent < 150 {
				t.Fatalf("refused after %d tokens; the limit is 200", spent)
			}
			return
		}
		if r.status != 200 {
			t.Fatalf("%d: %s", r.status, r.body)
		}
		rec := waitRecord(t, tg, r.header.Get("x-request-id"))
		spent += rec.Usage.TotalTokens
	}
	t.Fatalf("never limited after %d tokens", spent)
}

// TestResponsesNotStored: a response created with "store": false is not
// placed (the provider keeps nothing to continue), so nothing is written
// for it and continuing it is a 404 at the gateway.
func TestResponsesNotStored(t *testing.T) {
	_, _, tg := twoMocks(t)
	r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", `{"model":"support-bot","input":"x","store":false}`)
	if r.status != 200 {
		t.Fatalf("%d: %s", r.status, r.body)
	}
	if n := tg.respState.size(); n != 0 {
		t.Errorf("%d placements kept for an unstored response", n)
	}
	id := gjson.GetBytes(r.body, "id").Str
	c := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", fmt.Sprintf(`{"model":"support-bot","input":"y","previous_response_id":%q}`, id))
	if c.status != 404 || c.errorCode() != "previous_response_not_found" {
		t.Errorf("continuing an unstored response: %d %s", c.status, c.body)
	}
}
