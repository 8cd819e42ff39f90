package main

// Issue 14.3 for the gateway's own upstream-failure answers: when every
// target answered but broke the route's contract (enforce mode), the 502
// still names the target tried last and its provider request ID, on the
// response and at the record's top level, so the client can quote it to
// the provider; not only inside the record's attempts.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const contractEnforceConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
providers:
  - { name: mock, base_url: "http://%[4]s/v1", timeout: 5s }
routes:
  - name: strict
    targets: [ { provider: mock, model: m } ]
    contract: { mode: enforce, schema_file: refund.json }
`

func TestInteropContractViolationNamesProviderRequest(t *testing.T) {
	mock := startMockProc(t, "strict")
	setFault(t, mock, `{"model":"*","fault":{"broken_json":true}}`)
	schema, _ := os.ReadFile(filepath.Join("..", "..", "configs", "schemas", "refund.json"))
	g := startRelGateway(t, fmt.Sprintf(contractEnforceConfig, "%[1]s", "%[2]s", "%[3]s", mock), relPrep(func(dir string) {
		os.WriteFile(filepath.Join(dir, "refund.json"), schema, 0o600)
	}))

	req, _ := http.NewRequest("POST", g.api+"/v1/chat/completions", strings.NewReader(chatBody("strict", `"response_format":{"type":"json_object"}`)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Fatalf("status %d; want 502 contract_violation", resp.StatusCode)
	}
	pid := resp.Header.Get("x-cairn-provider-request-id")
	if resp.Header.Get("x-cairn-target") != "mock/m" || !strings.HasPrefix(pid, "strict-") {
		t.Errorf("x-cairn-target %q x-cairn-provider-request-id %q; want mock/m and the mock's strict-N", resp.Header.Get("x-cairn-target"), pid)
	}
	rec := waitRecord(t, g.admin, resp.Header.Get("x-request-id"))
	if rec["provider_request_id"] != pid || pid == "" {
		t.Errorf("record provider_request_id = %v; want %q at top level, not only in attempts", rec["provider_request_id"], pid)
	}
}
