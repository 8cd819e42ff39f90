package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/loadtest"
)

// TestGuardrailVerdicts: the gateway judges each chat answer, streamed or
// not, for refusals (with a route's own phrases replacing the shared ones)
// and for personal data the request did not hold, and records the verdicts
// (detector names only) in the capture record.
func TestGuardrailVerdicts(t *testing.T) {
	m, addr := startMock(t, loadtest.MockOptions{RequestIDPrefix: "g"})
	tg := startGateway(t, fmt.Sprintf(`
data_dir: "{{DATA}}"
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: plain
    targets: [{ provider: mock, model: plain-model }]
  - name: refusing
    targets: [{ provider: mock, model: refusing-model }]
  - name: leaking
    prompt: { system: "Escalations go to desk@shop.example." }
    targets: [{ provider: mock, model: leaking-model }]
  - name: own-phrases
    refusal: { patterns: ["Hello from the mock"] }
    targets: [{ provider: mock, model: plain-model }]
`, addr), nil)
	m.SetFault("refusing-model", loadtest.Fault{Refuse: true, Variant: -1})
	m.SetFault("leaking-model", loadtest.Fault{LeakPII: true})

	type call struct {
		model  string
		stream bool
		user   string
	}
	calls := []call{
		{"plain", false, "hello"}, {"plain", true, "hello"},
		{"refusing", false, "hello"}, {"refusing", false, "hello"}, {"refusing", true, "hello"}, {"refusing", true, "hello"},
		{"leaking", false, "hello"}, {"leaking", true, "hello"},
		{"leaking", false, "reach me at " + loadtest.MockLeakedEmail + " or " + loadtest.MockLeakedPhone},
		{"own-phrases", false, "hello"},
	}
	for i, c := range calls {
		body := fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":%q}]}`, c.model, c.stream, c.user)
		res := do(t, "POST", tg.api+"/v1/chat/completions", "", body, "X-Client-Request-Id", fmt.Sprintf("call-%d", i))
		if res.status != 200 {
			t.Fatalf("call %d: status %d: %s", i, res.status, res.body)
		}
	}
	recs := tg.records(t, len(calls))
	byID := map[string]int{}
	for i, r := range recs {
		byID[r.ClientRequestID] = i
	}
	want := []struct {
		refusal bool
		leak    []string
	}{
		{false, nil}, {false, nil},
		{true, nil}, {true, nil}, {true, nil}, {true, nil}, // refusal text and content_filter, each streamed and not
		{false, []string{"email", "phone"}}, {false, []string{"email", "phone"}},
		{false, nil}, // the request held the values: no leak
		{true, nil},  // the route's own phrase
	}
	for i, w := range want {
		j, ok := byID[fmt.Sprintf("call-%d", i)]
		if !ok {
			t.Fatalf("no record for call %d", i)
		}
		r := recs[j]
		if r.Refusal != w.refusal || !slices.Equal(r.PIILeak, w.leak) {
			t.Errorf("call %d (%+v): refusal %v pii_leak %q; want %v %q", i, calls[i], r.Refusal, r.PIILeak, w.refusal, w.leak)
		}
	}
	// The leaked values are masked in the records: no raw value on disk.
	files, _ := filepath.Glob(filepath.Join(tg.dir, "data", "capture", "*.jsonl"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), loadtest.MockLeakedEmail) || strings.Contains(string(b), "555 0142") {
			t.Errorf("%s holds a leaked value", f)
		}
	}
}
