package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/cairnhq/cairn/loadtest"
)

// The Responses API through the gateway (issue 19, part 1): the same path
// as chat completions, with the route's prompt prepended to instructions,
// output items judged and recorded, and every response pinned to the
// target that created it.

func responsesBody(model, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"model":%q,"input":"Where is my refund? Write to me at jane.doe@example.com"%s}`, model, extra)
}

// sseEvents splits a Responses stream into (event name, data) pairs.
func respEvents(t *testing.T, body []byte) (names []string, datas []string) {
	t.Helper()
	for _, block := range strings.Split(strings.TrimSpace(string(body)), "\n\n") {
		var name, data string
		for _, line := range strings.Split(block, "\n") {
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = v
			}
		}
		names, datas = append(names, name), append(datas, data)
	}
	return names, datas
}

func TestResponsesPlain(t *testing.T) {
	m1, _, tg := twoMocks(t)
	r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key",
		responsesBody("support-bot", `"instructions":"Answer in French.","user":"u-1"`))
	if r.status != 200 {
		t.Fatalf("status = %d; want 200: %s", r.status, r.body)
	}
	for h, want := range map[string]string{
		"x-cairn-route": "support-bot", "x-cairn-target": "primary/upstream-model", "x-cairn-contract": "none",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s = %q; want %q", h, got, want)
		}
	}
	id := gjson.GetBytes(r.body, "id").Str
	if !strings.HasPrefix(id, "resp_") || gjson.GetBytes(r.body, "output.0.content.0.text").Str != loadtest.DefaultMockContent {
		t.Fatalf("body = %s", r.body)
	}
	_, up := m1.LastRequest()
	if got := gjson.GetBytes(up, "instructions").Str; got != "You are terse.\n\nAnswer in French." {
		t.Errorf("upstream instructions = %q; want the route prompt, a blank line, then the client's", got)
	}
	if got := gjson.GetBytes(up, "model").Str; got != "upstream-model" {
		t.Errorf("upstream model = %q", got)
	}
	rec := tg.records(t, 1)[0]
	if rec.Endpoint != "responses" || rec.Route != "support-bot" || rec.Status != 200 {
		t.Fatalf("record = %+v", rec)
	}
	if rec.Usage.PromptTokens == 0 || rec.Usage.CompletionTokens == 0 || rec.Usage.TotalTokens != rec.Usage.PromptTokens+rec.Usage.CompletionTokens {
		t.Errorf("usage = %+v; want input_tokens and output_tokens read", rec.Usage)
	}
	if rec.ProviderRequestID == "" || rec.GatewayRequestID == "" {
		t.Errorf("IDs = %q, %q", rec.GatewayRequestID, rec.ProviderRequestID)
	}
	req := string(rec.Request)
	if strings.Contains(req, "jane.doe@example.com") || !strings.Contains(req, "Answer in French.") || !strings.Contains(req, `"instructions"`) {
		t.Errorf("recorded request = %s; want instructions and input, masked", req)
	}
	if !strings.Contains(string(rec.Response), loadtest.DefaultMockContent) {
		t.Errorf("recorded response = %s", rec.Response)
	}
}

// TestResponsesNoInstructions: a client without instructions gets the
// route's prompt as its instructions; a route without prompt leaves the
// body as sent.
func TestResponsesNoInstructions(t *testing.T) {
	m1, m2, tg := twoMocks(t)
	if r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", responsesBody("support-bot", "")); r.status != 200 {
		t.Fatalf("status = %d: %s", r.status, r.body)
	}
	_, up := m1.LastRequest()
	if got := gjson.GetBytes(up, "instructions").Str; got != "You are terse." {
		t.Errorf("upstream instructions = %q", got)
	}
	body := `{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}],"instructions":null}`
	if r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", body); r.status != 200 {
		t.Fatalf("status = %d: %s", r.status, r.body)
	}
	if _, up := m2.LastRequest(); string(up) != body {
		t.Errorf("upstream body = %s; want the client's bytes", up)
	}
}

func TestResponsesStream(t *testing.T) {
	_, _, tg := twoMocks(t)
	r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", responsesBody("support-bot", `"stream":true`))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("content-type"), "text/event-stream") {
		t.Fatalf("status = %d, %s: %s", r.status, r.header.Get("content-type"), r.body)
	}
	names, datas := respEvents(t, r.body)
	if len(names) < 5 || names[0] != "response.created" || names[len(names)-1] != "response.completed" {
		t.Fatalf("events = %v", names)
	}
	var text strings.Builder
	for i, n := range names {
		if got := gjson.Get(datas[i], "type").Str; got != n {
			t.Errorf("event %d named %q carries type %q", i, n, got)
		}
		if n == "response.output_text.delta" {
			text.WriteString(gjson.Get(datas[i], "delta").Str)
		}
	}
	if text.String() != loadtest.DefaultMockContent || strings.Contains(string(r.body), "[DONE]") {
		t.Errorf("text = %q; body has [DONE]: %v", text.String(), strings.Contains(string(r.body), "[DONE]"))
	}
	rec := tg.records(t, 1)[0]
	if rec.Outcome != "ok" || rec.Usage.PromptTokens == 0 || rec.Usage.CompletionTokens == 0 {
		t.Errorf("record outcome %q usage %+v", rec.Outcome, rec.Usage)
	}
	if rec.ProviderRequestID == "" || !strings.Contains(string(rec.Response), loadtest.DefaultMockContent) {
		t.Errorf("provider ID %q, response %s", rec.ProviderRequestID, rec.Response)
	}
}

// TestResponsesContracts: text.format and function tools are checked on
// the output, plain and streamed; a broken answer fails the contract.
func TestResponsesContracts(t *testing.T) {
	m1, _, tg := twoMocks(t)
	format := `"text":{"format":{"type":"json_schema","name":"a","schema":{"type":"object","required":["answer"],"properties":{"answer":{"type":"string"}}}}}`
	tools := `"tools":[{"type":"function","name":"lookup_order","parameters":{"type":"object","required":["order_id"],"properties":{"order_id":{"type":"string"}}}}],"tool_choice":"required"`
	for _, stream := range []string{"false", "true"} {
		for _, tc := range []struct {
			name, extra string
			fault       loadtest.Fault
			want        string
		}{
			{"schema", format, loadtest.Fault{}, "pass"},
			{"schema broken", format, loadtest.Fault{BrokenJSON: true}, "fail"},
			{"tool", tools, loadtest.Fault{}, "pass"},
			{"tool wrapped", tools, loadtest.Fault{WrapToolArgs: true, Variant: 1}, "fail"},
		} {
			t.Run(tc.name+"/stream="+stream, func(t *testing.T) {
				m1.ClearFaults()
				if tc.fault != (loadtest.Fault{}) {
					m1.SetFault("upstream-model", tc.fault)
				}
				r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", responsesBody("support-bot", tc.extra+`,"stream":`+stream))
				if r.status != 200 {
					t.Fatalf("status = %d: %s", r.status, r.body)
				}
				if stream == "false" && r.header.Get("x-cairn-contract") != tc.want {
					t.Errorf("x-cairn-contract = %q; want %q", r.header.Get("x-cairn-contract"), tc.want)
				}
				id := r.header.Get("x-request-id")
				rec := waitRecord(t, tg, id)
				if rec.Contract.Verdict != tc.want {
					t.Errorf("verdict = %q (%v); want %q", rec.Contract.Verdict, rec.Contract.Reasons, tc.want)
				}
			})
		}
	}
	m1.ClearFaults()
}

// waitRecord returns the record of the gateway request id.
func waitRecord(t *testing.T, tg *testGateway, id string) capture.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range tg.records(t, 1) {
			if r.GatewayRequestID == id {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no record of %s", id)
	return capture.Record{}
}

// TestResponsesFailover: a primary answering 5xx fails over to the
// fallback before any byte, plain and streamed, as for chat.
func TestResponsesFailover(t *testing.T) {
	m1, _, tg := twoMocks(t)
	m1.SetFault("*", loadtest.Fault{Status: 503})
	for _, stream := range []string{"false", "true"} {
		r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", responsesBody("support-bot", `"stream":`+stream))
		if r.status != 200 || r.header.Get("x-cairn-target") != "backup/backup-model" {
			t.Fatalf("stream=%s: status %d target %q: %s", stream, r.status, r.header.Get("x-cairn-target"), r.body)
		}
		rec := waitRecord(t, tg, r.header.Get("x-request-id"))
		if len(rec.Attempts) != 2 || rec.Attempts[0].Status != 503 || rec.Attempts[1].ProviderRequestID == "" {
			t.Errorf("stream=%s: attempts = %+v", stream, rec.Attempts)
		}
	}
}

const splitConfig = `
data_dir: {{DATA}}
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
redis_url: "%s"
providers:
  - { name: a, base_url: "http://%s/v1", timeout: 2s }
  - { name: b, base_url: "http://%s/v1", timeout: 2s }
keys:
  - { name: app, key_env: APP_KEY }
  - { name: limited, key_env: LIMITED_KEY, routes: [other] }
routes:
  - name: agent
    prompt: { version: v1, system: "Be exact." }
    targets:
      - { provider: a, model: model-a, weight: 50 }
      - { provider: b, model: model-b, weight: 50, cohort: canary }
    fallbacks:
      - { provider: b, model: model-b }
  - name: other
    targets:
      - { provider: a }
`

// TestResponsesPreviousAcrossCohorts: a route split 50/50 between two
// providers, no stickiness: every continuation (previous_response_id) and
// every GET, input_items, cancel and DELETE reaches the provider and model
// that created the response. Each mock knows only its own responses and
// answers 404 otherwise, so one misrouted request fails the test.
func TestResponsesPreviousAcrossCohorts(t *testing.T) {
	_, a1 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "pa"})
	_, a2 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "pb"})
	tg := startGateway(t, fmt.Sprintf(splitConfig, "", a1, a2), testEnv)
	targets := map[string]int{}
	for i := range 16 {
		r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", `{"model":"agent","input":"first"}`)
		if r.status != 200 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		id, target := gjson.GetBytes(r.body, "id").Str, r.header.Get("x-cairn-target")
		targets[target]++
		stream := fmt.Sprint(i%2 == 1)
		c := do(t, "POST", tg.api+"/v1/responses", "gw-app-key",
			fmt.Sprintf(`{"model":"agent","input":"next","previous_response_id":%q,"stream":%s}`, id, stream))
		if c.status != 200 || c.header.Get("x-cairn-target") != target {
			t.Fatalf("continue %s (created on %s): %d on %q: %s", id, target, c.status, c.header.Get("x-cairn-target"), c.body)
		}
		for _, q := range []struct{ method, path string }{
			{"GET", ""}, {"GET", "/input_items"}, {"POST", "/cancel"}, {"DELETE", ""},
		} {
			g := do(t, q.method, tg.api+"/v1/responses/"+id+q.path, "gw-app-key", "")
			if g.status != 200 || g.header.Get("x-cairn-target") != target {
				t.Fatalf("%s %s%s: %d on %q: %s", q.method, id, q.path, g.status, g.header.Get("x-cairn-target"), g.body)
			}
		}
		if g := do(t, "GET", tg.api+"/v1/responses/"+id, "gw-app-key", ""); g.status != 404 {
			t.Fatalf("GET after DELETE: %d %s", g.status, g.body)
		}
	}
	if len(targets) != 2 {
		t.Fatalf("targets = %v; want the split to use both cohorts", targets)
	}
	// Unknown IDs: OpenAI's 404 shape, nothing sent upstream.
	r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", `{"model":"agent","input":"x","previous_response_id":"resp_unknown"}`)
	if r.status != 404 || r.errorCode() != "previous_response_not_found" || gjson.GetBytes(r.body, "error.param").Str != "previous_response_id" {
		t.Errorf("unknown previous: %d %s", r.status, r.body)
	}
	r = do(t, "GET", tg.api+"/v1/responses/resp_unknown", "gw-app-key", "")
	if r.status != 404 || gjson.GetBytes(r.body, "error.type").Str != "invalid_request_error" {
		t.Errorf("unknown GET: %d %s", r.status, r.body)
	}
	// A key not allowed the route cannot reach its responses.
	c := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", `{"model":"agent","input":"first"}`)
	id := gjson.GetBytes(c.body, "id").Str
	if r := do(t, "GET", tg.api+"/v1/responses/"+id, "gw-limited-key", ""); r.status != 404 {
		t.Errorf("GET by a key without the route: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", fmt.Sprintf(`{"model":"other","input":"x","previous_response_id":%q}`, id)); r.status != 404 {
		t.Errorf("continuing another route's response: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", tg.api+"/v1/responses/"+id, "gw-app-key", ""); r.status != 405 {
		t.Errorf("PUT: %d %s", r.status, r.body)
	}
}

// TestResponsesPreviousAcrossReplicas: two gateways sharing Redis; a
// response created through one is continued and retrieved through the
// other.
func TestResponsesPreviousAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	_, a1 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "ra"})
	_, a2 := startMock(t, loadtest.MockOptions{RequestIDPrefix: "rb"})
	cfg := fmt.Sprintf(splitConfig, srv.URL(), a1, a2)
	g1 := startGateway(t, cfg, testEnv)
	g2 := startGateway(t, cfg, testEnv)
	for i := range 8 {
		r := do(t, "POST", g1.api+"/v1/responses", "gw-app-key", `{"model":"agent","input":"first","stream":true}`)
		if r.status != 200 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		_, datas := respEvents(t, r.body)
		id, target := gjson.Get(datas[0], "response.id").Str, r.header.Get("x-cairn-target")
		c := do(t, "POST", g2.api+"/v1/responses", "gw-app-key", fmt.Sprintf(`{"model":"agent","input":"next %d","previous_response_id":%q}`, i, id))
		if c.status != 200 || c.header.Get("x-cairn-target") != target {
			t.Fatalf("continue %s on the other replica: %d on %q (created on %q): %s", id, c.status, c.header.Get("x-cairn-target"), target, c.body)
		}
		if g := do(t, "GET", g2.api+"/v1/responses/"+id, "gw-app-key", ""); g.status != 200 || gjson.GetBytes(g.body, "id").Str != id {
			t.Fatalf("GET on the other replica: %d %s", g.status, g.body)
		}
	}
	m := do(t, "GET", g2.admin+"/metrics", "", "")
	if !strings.Contains(string(m.body), `cairn_responses_state_lookups_total{result="hit"}`) {
		t.Errorf("metrics lack the response state counters")
	}
}

// TestResponsesHostile: bad Responses bodies get an OpenAI 400 naming the
// parameter and reach no upstream.
func TestResponsesHostile(t *testing.T) {
	m1, m2, tg := twoMocks(t)
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	for _, tc := range []struct{ name, body, param string }{
		{"duplicate model", `{"model":"support-bot","model":"other","input":"x"}`, "model"},
		{"duplicate instructions", `{"model":"support-bot","input":"x","instructions":"a","instructions":"b"}`, "instructions"},
		{"duplicate key in an input item", `{"model":"support-bot","input":[{"role":"user","content":"a","content":"b"}]}`, "input[0].content"},
		{"duplicate key in text.format", `{"model":"support-bot","input":"x","text":{"format":{"type":"json_object","type":"text"}}}`, "text.format.type"},
		{"nesting bomb", `{"model":"support-bot","input":` + deep + `}`, ""},
		{"huge temperature", `{"model":"support-bot","input":"x","temperature":1e999}`, "temperature"},
		{"input not string or array", `{"model":"support-bot","input":5}`, "input"},
		{"instructions not string", `{"model":"support-bot","input":"x","instructions":{}}`, "instructions"},
		{"bad previous id", `{"model":"support-bot","input":"x","previous_response_id":"../../admin"}`, "previous_response_id"},
		{"function tool without name", `{"model":"support-bot","input":"x","tools":[{"type":"function"}]}`, "tools[0].name"},
		{"bad schema", `{"model":"support-bot","input":"x","text":{"format":{"type":"json_schema","name":"a","schema":{"type":12}}}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := m1.Requests() + m2.Requests()
			r := do(t, "POST", tg.api+"/v1/responses", "gw-app-key", tc.body)
			if r.status != 400 || gjson.GetBytes(r.body, "error.type").Str != "invalid_request_error" {
				t.Fatalf("status = %d: %s", r.status, r.body)
			}
			if tc.param != "" && gjson.GetBytes(r.body, "error.param").Str != tc.param {
				t.Errorf("param = %q; want %q (%s)", gjson.GetBytes(r.body, "error.param").Str, tc.param, r.body)
			}
			if n := m1.Requests() + m2.Requests() - before; n != 0 {
				t.Errorf("%d requests reached an upstream", n)
			}
		})
	}
}

var _ = json.Marshal
