package configs

import (
	"strings"
	"testing"
)

// TestOTLPEndpointValidated: tracing.otlp_endpoint is an http(s) URL or
// host:port; one carrying credentials (user info, a query, a fragment) is
// refused with the field path, and the refusal never echoes the secret.
func TestOTLPEndpointValidated(t *testing.T) {
	const base = `
providers: [{ name: p, base_url: "http://127.0.0.1:1/v1" }]
routes: [{ name: r, targets: [{ provider: p, model: m }] }]
tracing: { otlp_endpoint: %q }
`
	for _, ok := range []string{"127.0.0.1:4318", "collector:4318", "[::1]:4318", "http://collector:4318", "https://otel.example.com/v1/traces", "http://collector:4318/"} {
		if _, err := Load([]byte(strings.Replace(base, "%q", `"`+ok+`"`, 1)), Options{}); err != nil {
			t.Errorf("otlp_endpoint %q refused: %v", ok, err)
		}
	}
	for _, bad := range []struct{ value, want string }{
		{"https://user:s3cr3t-tok@otel.example.com", "credentials in the URL are not allowed"},
		{"https://s3cr3t-tok@otel.example.com", "credentials in the URL are not allowed"},
		{"https://otel.example.com/v1/traces?api-key=s3cr3t-tok", "must not carry a query"},
		{"https://otel.example.com/#s3cr3t-tok", "must not carry a query"},
		{"s3cr3t-tok@collector:4318", "not an http(s) URL or host:port"},
		{"collector", "not an http(s) URL or host:port"},
		{"collector:http", "is not a number"},
		{"ftp://collector:4318", "not an http(s) URL or host:port"},
	} {
		_, err := Load([]byte(strings.Replace(base, "%q", `"`+bad.value+`"`, 1)), Options{})
		if err == nil {
			t.Errorf("otlp_endpoint %q accepted", bad.value)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "tracing.otlp_endpoint: ") || !strings.Contains(msg, bad.want) || strings.Contains(msg, "s3cr3t") {
			t.Errorf("otlp_endpoint %q: error %q; want the field path and %q, without the secret", bad.value, msg, bad.want)
		}
	}
}
