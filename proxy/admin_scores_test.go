package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/loadtest"
)

const scoresConfig = `
data_dir: {{DATA}}
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_token_env: ADMIN_TOKEN
release: "test-1"
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: support-bot
    prompt: { version: v7 }
    targets:
      - { provider: primary, model: upstream-model }
  - name: unpriced
    targets:
      - { provider: primary, model: other-model }
detection: { eval: { scale: [0, 1] } }
pricing:
  - { provider: primary, model: upstream-model, input: 1, output: 2 }
`

const adminTok = "admin-token-for-scores"

// Issue 16.1: POST /admin/scores validates each item on its own, joins it
// to its request by any of its three IDs and stores it where lookups list
// it; bad items never drop good ones, a body that is not JSON is a 400 in
// OpenAI's shape, more than 10,000 items a 413 that stores nothing.
func TestAdminScores(t *testing.T) {
	_, addr := startMock(t, loadtest.MockOptions{RequestIDPrefix: "p1"})
	tg := startGateway(t, fmt.Sprintf(scoresConfig, addr), map[string]string{"ADMIN_TOKEN": adminTok})
	var gw, prov []string
	for i := range 3 {
		r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", ""), "x-client-request-id", fmt.Sprintf("app-%d", i))
		if r.status != 200 {
			t.Fatalf("chat: %d %s", r.status, r.body)
		}
		gw = append(gw, r.header.Get("x-request-id"))
		prov = append(prov, r.header.Get("x-cairn-provider-request-id"))
	}
	un := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("unpriced", ""))
	recs := tg.records(t, 4)
	for _, r := range recs {
		switch r.Route {
		case "support-bot":
			if r.CostUSD == nil || *r.CostUSD <= 0 {
				t.Errorf("priced record cost_usd = %v; want > 0", r.CostUSD)
			}
		case "unpriced":
			if r.CostUSD != nil {
				t.Errorf("unpriced record cost_usd = %v; want null", *r.CostUSD)
			}
		}
	}
	post := func(body string) result {
		return do(t, "POST", tg.admin+"/admin/scores", adminTok, body)
	}
	body := `[
 {"request_id": "` + gw[0] + `", "name": "faithfulness", "value": 0.82, "source": "judge-v3", "at": "2026-11-24T10:00:00Z"},
 {"request_id": "` + prov[1] + `", "name": "faithfulness", "value": 0.4},
 {"request_id": "app-2", "name": "faithfulness", "value": 1},
 {"request_id": "req_unknown", "name": "faithfulness", "value": 0.5},
 {"request_id": "` + gw[0] + `", "name": "faithfulness", "value": NaN},
 {"request_id": "` + gw[0] + `", "name": "faithfulness", "value": "0.7"},
 {"request_id": "` + gw[0] + `", "name": "faithfulness", "value": 1.5},
 {"request_id": "` + gw[0] + `", "name": "", "value": 0.5},
 {"request_id": "` + gw[0] + `", "name": "` + strings.Repeat("n", 65) + `", "value": 0.5},
 {"request_id": "` + gw[0] + `", "name": "a@b.com", "value": 0.5},
 {"request_id": "` + gw[0] + `", "name": "relevance", "value": 1e999},
 7
]`
	r := post(body)
	if r.status != 200 {
		t.Fatalf("POST /admin/scores = %d %s", r.status, r.body)
	}
	var res struct {
		Accepted int `json:"accepted"`
		Rejected []struct {
			Index int    `json:"index"`
			Error string `json:"error"`
		} `json:"rejected"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	wantRejected := map[int]string{3: "no request with that ID", 4: "not a finite number", 5: "got a string", 6: "outside the scale",
		7: "name: required", 8: "longer than 64", 9: "only letters", 10: "not a finite number", 11: "not a JSON object"}
	if res.Accepted != 3 || len(res.Rejected) != len(wantRejected) {
		t.Fatalf("accepted %d, rejected %+v; want 3 accepted, %d rejected", res.Accepted, res.Rejected, len(wantRejected))
	}
	for _, x := range res.Rejected {
		if !strings.Contains(x.Error, wantRejected[x.Index]) {
			t.Errorf("rejected[%d] = %q; want %q", x.Index, x.Error, wantRejected[x.Index])
		}
		if strings.Contains(x.Error, "a@b.com") || strings.Contains(x.Error, "req_unknown") {
			t.Errorf("rejection echoes the client's value: %q", x.Error)
		}
	}
	// NDJSON, one line of it not JSON.
	r = post(`{"request_id": "` + gw[1] + `", "name": "relevance", "value": 0.3}` + "\n" + `not json` + "\n" +
		`{"request_id": "` + gw[1] + `", "name": "faithfulness", "value": 0.9}` + "\n")
	if r.status != 200 || !strings.Contains(string(r.body), `"accepted":2`) || !strings.Contains(string(r.body), `"index":1`) {
		t.Fatalf("NDJSON = %d %s; want 2 accepted, line 1 rejected", r.status, r.body)
	}
	// One object over several lines is one score.
	r = post("{\n  \"request_id\": \"" + gw[2] + "\",\n  \"name\": \"relevance\",\n  \"value\": 0.6\n}\n")
	if r.status != 200 || !strings.Contains(string(r.body), `"accepted":1`) {
		t.Fatalf("one indented object = %d %s; want 1 accepted", r.status, r.body)
	}
	// Not JSON at all: 400 in OpenAI's shape.
	for _, b := range []string{"hello", "", "[1, 2", "<xml/>"} {
		r = post(b)
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		if r.status != 400 || json.Unmarshal(r.body, &e) != nil || e.Error.Type != "invalid_request_error" || e.Error.Message == "" {
			t.Errorf("POST %q = %d %s; want an OpenAI-shaped 400", b, r.status, r.body)
		}
	}
	// 10,001 items: 413, nothing of it stored.
	var big strings.Builder
	big.WriteString("[")
	for i := range 10_001 {
		if i > 0 {
			big.WriteString(",")
		}
		big.WriteString(`{"request_id":"` + gw[2] + `","name":"bulk","value":0.5}`)
	}
	big.WriteString("]")
	r = post(big.String())
	if r.status != 413 || r.errorCode() != "too_many_scores" {
		t.Fatalf("10,001 scores = %d %s; want 413 too_many_scores", r.status, r.body)
	}
	// Unauthorized.
	if r := do(t, "POST", tg.admin+"/admin/scores", "wrong", body); r.status != 401 {
		t.Errorf("wrong token = %d; want 401", r.status)
	}

	// Lookups list the scores, by any ID; the bulk call stored none.
	r = do(t, "GET", tg.admin+"/admin/requests/app-1", adminTok, "")
	var got struct {
		GatewayRequestID string          `json:"gateway_request_id"`
		Scores           []capture.Score `json:"scores"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil || got.GatewayRequestID != gw[1] || len(got.Scores) != 3 {
		t.Fatalf("GET /admin/requests/app-1 = %s; want request 1 with 3 scores", r.body)
	}
	if s := got.Scores[0]; s.Route != "support-bot" || s.Cohort != "stable" || s.Target != "primary/upstream-model" || s.PromptVersion != "v7" || s.Release != "test-1" || s.Value != 0.4 {
		t.Errorf("joined score = %+v", s)
	}
	r = do(t, "GET", tg.admin+"/admin/requests/"+gw[2], adminTok, "")
	if strings.Contains(string(r.body), "bulk") || !strings.Contains(string(r.body), "relevance") {
		t.Errorf("the refused 10,001-item call stored scores: %s", r.body)
	}
	m := string(do(t, "GET", tg.admin+"/metrics", adminTok, "").body)
	for _, want := range []string{
		`cairn_scores_received_total{route="support-bot",cohort="stable",target="primary/upstream-model"} 6`,
		`cairn_cost_usd_total{route="support-bot",cohort="stable",target="primary/upstream-model"} `,
		`cairn_requests_unpriced_total{route="unpriced",cohort="stable",target="primary/other-model"} 1`,
		`cairn_scores_lost_total{sink="file"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_ = un
}
