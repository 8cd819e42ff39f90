package capture

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/cairnhq/cairn/configs"
)

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

func TestTracingWithoutExporter(t *testing.T) {
	tr, err := NewTracing(configs.Tracing{}, "test")
	if err != nil {
		t.Fatalf("NewTracing: %v", err)
	}
	const in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name, traceparent string
		continued         bool
	}{
		{"valid", in, true},
		{"valid unsampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"future version with extra", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true},
		{"empty", "", false},
		{"garbage", "hello", false},
		{"upper case", strings.ToUpper(in), false},
		{"zero trace", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"zero span", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"version 00 too long", in + "-x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tr.Start(tt.traceparent, "chat.completions")
			tp := s.Traceparent()
			if !traceparentRE.MatchString(tp) {
				t.Fatalf("Traceparent() = %q; not W3C", tp)
			}
			if !strings.Contains(tp, s.TraceID()) || len(s.TraceID()) != 32 || s.TraceID() == strings.Repeat("0", 32) {
				t.Errorf("TraceID() = %q with Traceparent %q", s.TraceID(), tp)
			}
			if got := s.TraceID() == "4bf92f3577b34da6a3ce929d0e0e4736"; got != tt.continued {
				t.Errorf("Start(%q) continued = %v; want %v", tt.traceparent, got, tt.continued)
			}
			if strings.Contains(tp, "00f067aa0ba902b7") {
				t.Errorf("Traceparent() = %q reuses the client's span ID", tp)
			}
			if tt.continued && tp[53:] != tt.traceparent[53:55] {
				t.Errorf("Traceparent() flags = %s; want the client's %s", tp[53:], tt.traceparent[53:55])
			}
			s.End(&Record{Status: 200})
		})
	}
	if a, b := tr.Start("", "x").TraceID(), tr.Start("", "x").TraceID(); a == b {
		t.Errorf("two new traces share ID %s", a)
	}
	var nilT *Tracing
	if s := nilT.Start(in, "x"); s.TraceID() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("nil Tracing did not continue the trace")
	}
	var nilS *Span
	nilS.End(nil)
	if nilS.TraceID() != "" || nilS.Traceparent() != "" {
		t.Errorf("nil Span returned IDs")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

// collector is an OTLP/HTTP endpoint that keeps what it receives.
type collector struct {
	mu   sync.Mutex
	reqs []*coltrace.ExportTraceServiceRequest
	path string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, &req)
	c.path = r.URL.Path
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(nil)
}

func TestTracingExportsGenAIAttributes(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	for _, endpoint := range []string{srv.URL, strings.TrimPrefix(srv.URL, "http://")} {
		t.Run(endpoint, func(t *testing.T) {
			col.mu.Lock()
			col.reqs = nil
			col.mu.Unlock()
			tr, err := NewTracing(configs.Tracing{OTLPEndpoint: endpoint, SampleRatio: 1}, "2026.11.3")
			if err != nil {
				t.Fatalf("NewTracing: %v", err)
			}
			s := tr.Start("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "chat.completions")
			if s.TraceID() != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("TraceID() = %s; want the client's trace", s.TraceID())
			}
			s.End(&Record{
				GatewayRequestID: "gw-1", Endpoint: "chat.completions", Provider: "openai", RequestedModel: "support-bot",
				Model: "gpt-4o-mini", Route: "support-bot", Cohort: "canary", Status: 502, Outcome: OutcomeUpstreamError,
				Usage: Usage{PromptTokens: 12, CompletionTokens: 3}, Contract: Verdict{Verdict: VerdictNone},
				Error: "secret bob@example.com",
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			if len(col.reqs) == 0 || col.path != "/v1/traces" {
				t.Fatalf("collector got %d requests on %q; want spans on /v1/traces", len(col.reqs), col.path)
			}
			rs := col.reqs[0].ResourceSpans[0]
			span := rs.ScopeSpans[0].Spans[0]
			attrs := map[string]string{}
			for _, kv := range span.Attributes {
				v := kv.Value.GetStringValue()
				if v == "" {
					v = strings.TrimSpace(strings.TrimPrefix(kv.Value.String(), "int_value:"))
				}
				attrs[kv.Key] = v
			}
			want := map[string]string{
				"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "support-bot",
				"gen_ai.response.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": "3",
				"http.response.status_code": "502", "cairn.route": "support-bot", "cairn.cohort": "canary",
				"cairn.contract.verdict": "none", "cairn.gateway_request_id": "gw-1", "error.type": "upstream_error",
			}
			for k, v := range want {
				if attrs[k] != v {
					t.Errorf("span attribute %s = %q; want %q", k, attrs[k], v)
				}
			}
			for _, kv := range span.Attributes {
				if strings.Contains(kv.Value.String(), "bob@example.com") {
					t.Errorf("span attribute %s carries the error text", kv.Key)
				}
			}
			if span.Status.GetCode().String() != "STATUS_CODE_ERROR" {
				t.Errorf("span status = %v; want error", span.Status)
			}
			if len(span.ParentSpanId) == 0 {
				t.Errorf("span has no parent; want the client's span")
			}
		})
	}
	if _, err := NewTracing(configs.Tracing{OTLPEndpoint: "ftp://x"}, "v"); err == nil {
		t.Errorf("NewTracing(ftp://x) = nil error; want refusal")
	}
}
