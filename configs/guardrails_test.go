package configs_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

func TestGuardrailDefaults(t *testing.T) {
	c := mustLoad(t, okBase, configs.Options{})
	if got, want := c.Detection.RefusalRatePoints, (configs.Threshold{Investigate: 5, Page: 10}); got != want {
		t.Errorf("refusal_rate_points = %+v; want %+v", got, want)
	}
	if got := c.Detection.PIILeakRate; got != (configs.Threshold{}) {
		t.Errorf("pii_leak_rate = %+v; want 0 (any sustained leak)", got)
	}
	if got := c.RefusalPatterns(&c.Routes[0]); !slices.Equal(got, configs.DefaultRefusalPatterns) {
		t.Errorf("RefusalPatterns = %q; want the built-in list", got)
	}
}

func TestGuardrailFields(t *testing.T) {
	y := okProviders + `routes:
  - {name: a, targets: [{provider: openai}], refusal: {patterns: ["Nope"]}}
  - {name: b, targets: [{provider: openai}]}
detection:
  refusal_rate_points: {investigate: 3, page: 8}
  pii_leak_rate: 0.01
  refusal: {patterns: ["Declined:"]}
`
	c := mustLoad(t, y, configs.Options{})
	if got := c.Detection.RefusalRatePoints; got != (configs.Threshold{Investigate: 3, Page: 8}) {
		t.Errorf("refusal_rate_points = %+v", got)
	}
	if got := c.Detection.PIILeakRate; got != (configs.Threshold{Page: 0.01}) {
		t.Errorf("pii_leak_rate = %+v", got)
	}
	if got := c.RefusalPatterns(c.Route("a")); !slices.Equal(got, []string{"Nope"}) {
		t.Errorf("route a patterns = %q; want its own", got)
	}
	if got := c.RefusalPatterns(c.Route("b")); !slices.Equal(got, []string{"Declined:"}) {
		t.Errorf("route b patterns = %q; want detection.refusal.patterns", got)
	}
}

func TestGuardrailErrors(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tt := range []struct{ yaml, want string }{
		{"detection: {refusal_rate_points: 150}", "detection.refusal_rate_points: levels must be points in (0, 100]"},
		{"detection: {refusal_rate_points: {investigate: 12, page: 8}}", "detection.refusal_rate_points: investigate 12 must be below page 8"},
		{"detection: {refusal_rate_points: {investigate: 8, page: 8}}", "detection.refusal_rate_points: investigate 8 must be below page 8"},
		{"detection: {pii_leak_rate: {investigate: 0.1, page: 0.1}}", "detection.pii_leak_rate: investigate 0.1 must be below page 0.1"},
		{"detection: {refusal_rate_points: {investgate: 2}}", "investgate"},
		{"detection: {pii_leak_rate: 1}", "detection.pii_leak_rate: levels must be fractions in [0, 1)"},
		{"detection: {pii_leak_rate: lots}", "detection.pii_leak_rate"},
		{"detection: {refusal: {patterns: ['  ']}}", "detection.refusal.patterns[0]: empty pattern"},
		{"detection: {refusal: {paterns: [x]}}", "paterns"},
		{"routes: [{name: r, targets: [{provider: openai}], refusal: {patterns: [ok, '" + long + "']}}]", "routes[0].refusal.patterns[1]: 300 bytes; at most 256"},
	} {
		y := tt.yaml + "\n" + okProviders
		if !strings.HasPrefix(tt.yaml, "routes:") {
			y += okRoutes
		}
		_, err := load(t, y, configs.Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q) = %v; want an error containing %q", tt.yaml, err, tt.want)
		}
	}
	// Disabling both signals is allowed.
	mustLoad(t, okBase+"detection: {refusal_rate_points: -1, pii_leak_rate: -1}\n", configs.Options{})
}
