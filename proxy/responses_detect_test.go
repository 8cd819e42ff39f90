package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairnhq/cairn/loadtest"
)

// Detection, guardrails and incidents see Responses traffic as they see
// chat (issue 19).

const responsesDetectConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: agent
    targets:
      - { provider: mock, model: stable-model, weight: 50 }
      - { provider: mock, model: canary-model, weight: 50, cohort: canary }
    contract: { mode: observe }
    auto_rollback: true
detection: { window: 30s, min_requests: 6, contract_failure_rate: 0.3 }
`

// TestResponsesIncident: a canary whose Responses output breaks its
// text.format opens a contract incident and is rolled back.
func TestResponsesIncident(t *testing.T) {
	m, addr := startMock(t, loadtest.MockOptions{})
	m.SetFault("canary-model", loadtest.Fault{BrokenJSON: true})
	tg := startGateway(t, fmt.Sprintf(responsesDetectConfig, addr), nil)
	body := `{"model":"agent","input":"x","text":{"format":{"type":"json_object"}}}`
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r := do(t, "POST", tg.api+"/v1/responses", "", body)
		if r.status != 200 {
			t.Fatalf("%d: %s", r.status, r.body)
		}
		for _, s := range tg.incidents.List() {
			if s.Trigger.Route == "agent" && s.Trigger.Cohort == "canary" {
				if got := tg.Live().Load().Route("agent").RolledBack(); len(got) == 1 && got[0] == "canary" {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no incident rolled the canary back; incidents: %+v", tg.incidents.List())
}

// TestResponsesGuardrails: a refusal and personal data in the output are
// judged on Responses answers, plain and streamed.
func TestResponsesGuardrails(t *testing.T) {
	m, addr := startMock(t, loadtest.MockOptions{})
	tg := startGateway(t, fmt.Sprintf(responsesDetectConfig, addr), nil)
	for _, stream := range []string{"false", "true"} {
		m.SetFault("*", loadtest.Fault{LeakPII: true})
		r := do(t, "POST", tg.api+"/v1/responses", "", `{"model":"agent","input":"hello","stream":`+stream+`}`)
		rec := waitRecord(t, tg, r.header.Get("x-request-id"))
		if len(rec.PIILeak) == 0 {
			t.Errorf("stream=%s: pii_leak empty for an answer carrying %s", stream, loadtest.MockLeakedEmail)
		}
		m.SetFault("*", loadtest.Fault{Refuse: true, Variant: 0})
		r = do(t, "POST", tg.api+"/v1/responses", "", `{"model":"agent","input":"hello","stream":`+stream+`}`)
		if rec := waitRecord(t, tg, r.header.Get("x-request-id")); !rec.Refusal {
			t.Errorf("stream=%s: refusal not judged: %s", stream, rec.Response)
		}
	}
}
