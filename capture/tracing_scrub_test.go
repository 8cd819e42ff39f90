package capture

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// Issue 12.14: spans exported the client's raw model string (and the
// provider's raw request ID) before the record was masked.
func TestTracingMasksClientStrings(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	for _, withSecrets := range []bool{false, true} {
		col.mu.Lock()
		col.reqs = nil
		col.mu.Unlock()
		tr, err := NewTracing(configs.Tracing{OTLPEndpoint: srv.URL, SampleRatio: 1}, "v")
		if err != nil {
			t.Fatal(err)
		}
		if withSecrets {
			m, s := NewMasker(configs.Masking{}), NewSecrets("gw-key-0000-secret")
			tr.SetScrub(func(v string) string { return s.String(m.String(v)) })
		}
		sp := tr.Start("", "chat.completions")
		sp.End(&Record{GatewayRequestID: "gw-1", Endpoint: "chat.completions", Status: 404, Outcome: OutcomeNotFound,
			RequestedModel: "jane.doe@example.com gw-key-0000-secret", Model: "+1 415 555 2671", ProviderRequestID: "req 4111 1111 1111 1111"})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := tr.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		cancel()
		col.mu.Lock()
		span := col.reqs[0].ResourceSpans[0].ScopeSpans[0].Spans[0]
		col.mu.Unlock()
		attrs := map[string]string{}
		for _, kv := range span.Attributes {
			attrs[kv.Key] = kv.Value.GetStringValue()
			for _, raw := range []string{"jane.doe", "555 2671", "4111", "gw-key-0000"} {
				if withSecrets || raw != "gw-key-0000" {
					if strings.Contains(kv.Value.String(), raw) {
						t.Errorf("span attribute %s = %q carries %q raw", kv.Key, kv.Value.String(), raw)
					}
				}
			}
		}
		if !strings.HasPrefix(attrs["gen_ai.request.model"], PlaceholderEmail) || attrs["gen_ai.response.model"] != PlaceholderPhone {
			t.Errorf("model attributes = %q, %q; want masked", attrs["gen_ai.request.model"], attrs["gen_ai.response.model"])
		}
	}
}
