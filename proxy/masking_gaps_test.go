package proxy

// Issue 12.14: masking gaps outside the capture record.

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

const maskingGapsConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: chat
    targets: [ { provider: mock, model: m, weight: 50 }, { provider: mock, model: m2, weight: 50, cohort: canary } ]
`

// The reason an operator types when declaring an incident or rolling back
// by hand was stored, logged and sent raw.
func TestAdminReasonIsMasked(t *testing.T) {
	addr := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	})
	tg, logs := startLogged(t, fmt.Sprintf(maskingGapsConfig, addr), nil)
	raw := []string{"jane.doe@example.com", "+1 415 555 2671", "4111 1111 1111 1111"}
	reason := "customer " + raw[0] + " (" + raw[1] + ", card " + raw[2] + ") reports refunds failing"
	post := func(path, body string) result {
		t.Helper()
		r := do(t, "POST", tg.admin+path, "", body)
		if r.status >= 300 {
			t.Fatalf("POST %s = %d %s", path, r.status, r.body)
		}
		return r
	}
	inc := post("/admin/incidents", `{"route":"chat","reason":"`+reason+`"}`).json(t)
	post("/admin/routes/chat/rollback", `{"cohort":"canary","reason":"`+reason+`"}`)
	id, _ := inc["id"].(string)
	answers := map[string][]byte{}
	_ = inc
	for _, p := range []string{"/admin/incidents/" + id, "/admin/incidents/" + id + "/postmortem", "/admin/incidents", "/admin/audit"} {
		r := do(t, http.MethodGet, tg.admin+p, "", "")
		answers[p] = r.body
	}
	if !strings.Contains(string(answers["/admin/incidents/"+id]), "[EMAIL]") {
		t.Errorf("the incident does not carry the masked reason: %.400s", answers["/admin/incidents/"+id])
	}
	if err := tg.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(filepath.Join(tg.dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			answers[p] = b
		}
		return nil
	})
	answers["logs"] = []byte(logs.String())
	for where, b := range answers {
		for _, v := range append(raw, "555 2671", "4111111111111111") {
			if strings.Contains(string(b), v) {
				t.Errorf("%s holds %q raw", where, v)
			}
		}
	}
}
