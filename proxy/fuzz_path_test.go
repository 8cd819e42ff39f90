package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/incidents"
	"github.com/cairnhq/cairn/loadtest"
)

const fuzzPathConfig = `
data_dir: {{DATA}}
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 2s }
routes:
  - name: support-bot
    match: ["gpt-*"]
    targets: [ { provider: primary } ]
    contract: { mode: observe }
`

// FuzzRequestPath drives the whole request path with one body: the real
// handler over a loopback socket (admission, parsing, routing, the
// upstream, the contract), then the capture record it produced, then that
// record as an incident sample through every incident encoder (JSON,
// clone by JSON round trip, postmortem, samples JSONL). It checks that the
// gateway answers every body with either a relayed answer or an
// OpenAI-shaped error, that exactly that request's record exists and
// round-trips through JSON, and that no encoder fails or panics on it.
// The second argument picks the endpoint (epSeed*). Seeds: the hostile
// shapes of issue 12 on chat, embeddings and the Responses API (issue 19) (the 5.6 MiB nesting bomb of 12.1,
// the non-finite numbers of 12.2, duplicate keys, 1 MiB model names and
// tools) plus the committed corpus in testdata/fuzz/FuzzRequestPath.
func FuzzRequestPath(f *testing.F) {
	for _, s := range hostileSeeds() {
		f.Add([]byte(s), epSeedChat)
	}
	f.Add([]byte(chat("support-bot", `"stream":true,"temperature":1e999`)), epSeedEmbeddings)
	f.Add([]byte(chat("gpt-x", `"stream":true,"stream_options":{"include_usage":false,"include_usage":true}`)), epSeedEmbeddings)
	for _, s := range responsesSeeds() {
		f.Add([]byte(s), epSeedResponses)
	}

	m := loadtest.NewMock(loadtest.MockOptions{})
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	tg := startGateway(f, fmt.Sprintf(fuzzPathConfig, addr), nil)
	client := &http.Client{Timeout: 10 * time.Second}
	f.Cleanup(client.CloseIdleConnections)

	f.Fuzz(func(t *testing.T, body []byte, ep uint8) {
		path := "/v1/chat/completions"
		switch ep % 3 {
		case epSeedEmbeddings:
			path = "/v1/embeddings"
		case epSeedResponses:
			path = "/v1/responses"
		}
		requestPathOnce(t, tg, client, path, body)
	})
}

// requestPathOnce posts body to path and checks the answer, the record it
// produced and that record through every incident encoder.
func requestPathOnce(t *testing.T, tg *testGateway, client *http.Client, path string, body []byte) {
	t.Helper()
	{
		resp, err := client.Post(tg.api+path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("x-request-id")
		if id == "" {
			t.Fatalf("no x-request-id on a %d answer", resp.StatusCode)
		}
		if resp.StatusCode >= 400 {
			var e struct {
				Error *struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
				} `json:"error"`
			}
			if json.Unmarshal(out, &e) != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("status %d with a body that is not an OpenAI error: %.300q", resp.StatusCode, out)
			}
		}

		var rec *capture.Record
		for deadline := time.Now().Add(5 * time.Second); rec == nil; time.Sleep(2 * time.Millisecond) {
			if r, err := tg.Capture().Lookup(t.Context(), id); err == nil {
				rec = r
			} else if time.Now().After(deadline) {
				t.Fatalf("no capture record for %s (status %d)", id, resp.StatusCode)
			}
		}
		if rec.GatewayRequestID != id || rec.Status != resp.StatusCode && resp.StatusCode != 200 {
			t.Fatalf("record %s status %d; the client got %s status %d", rec.GatewayRequestID, rec.Status, id, resp.StatusCode)
		}
		line, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("record does not encode: %v", err)
		}
		var back capture.Record
		if err := json.Unmarshal(line, &back); err != nil {
			t.Fatalf("record line does not decode: %v\n%.500s", err, line)
		}

		inc := &incidents.Incident{ID: "inc_fuzz", Status: incidents.StatusOpen, Trigger: incidents.Trigger{Route: rec.Route},
			Samples: incidents.Samples{Before: []capture.Record{back}, During: []capture.Record{*rec}}}
		b, err := json.MarshalIndent(inc, "", "  ")
		if err != nil {
			t.Fatalf("incident does not encode: %v", err)
		}
		var c incidents.Incident
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("incident does not decode: %v", err)
		}
		if _, err := json.Marshal(&c); err != nil {
			t.Fatalf("decoded incident does not encode: %v", err)
		}
		_ = incidents.RenderPostmortem(&c)
		if err := incidents.WriteSamplesJSONL(io.Discard, &c); err != nil {
			t.Fatalf("samples JSONL: %v", err)
		}
	}
}

// hostileSeeds are the request bodies of issue 12 that once crashed the
// gateway, grew it without bound or made it and the upstream disagree.
// The large ones are generated here rather than committed.
func hostileSeeds() []string {
	return []string{
		strings.Repeat("[", 5_600_000), // 12.1: stack overflow in gjson.ValidBytes
		`{"model":"support-bot","messages":` + strings.Repeat("[", 1_000_000),
		chat("support-bot", `"temperature":1e999`), // 12.2: +Inf in the record
		chat("support-bot", `"temperature":-1e999,"top_p":1e999`),
		chat("gpt-"+strings.Repeat("x", 1<<20), ""),                                                        // 12.7: 1 MiB model name
		chat("support-bot", `"tools":`+hugeTools(1<<20, "")),                                               // 12.8: 1 MiB of tools
		chat("support-bot", `"stream":true,"stream_options":{"include_usage":false,"include_usage":true}`), // 12.10
		`{"model":"support-bot","model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`,
	}
}
