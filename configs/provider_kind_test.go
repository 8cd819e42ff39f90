package configs_test

import (
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

func TestProviderKindDefaults(t *testing.T) {
	y := `providers:
  - {name: oa, base_url: 'https://api.openai.com/v1'}
  - {name: az, kind: azure, base_url: 'https://r.openai.azure.com', api_version: 2024-10-21, deployments: {gpt-4o-mini: mini-prod}}
  - {name: az1, kind: azure, base_url: 'https://r.openai.azure.com', path_style: v1}
  - {name: an, kind: anthropic, base_url: 'https://api.anthropic.com'}
routes: [{name: r, targets: [{provider: oa}], fallbacks: [{provider: an, model: claude-sonnet-4-5}]}]
`
	c := mustLoad(t, y, configs.Options{})
	p := c.Providers
	if p[0].Kind != configs.KindOpenAI {
		t.Errorf("kind of oa = %q; want openai", p[0].Kind)
	}
	if p[1].PathStyle != configs.PathStyleDeployments || p[1].Deployment("gpt-4o-mini") != "mini-prod" || p[1].Deployment("gpt-4o") != "gpt-4o" {
		t.Errorf("azure = %+v; want path_style deployments, mini-prod for gpt-4o-mini, the model's name otherwise", p[1])
	}
	if p[2].PathStyle != configs.PathStyleV1 {
		t.Errorf("az1 path_style = %q; want v1", p[2].PathStyle)
	}
	if p[3].AnthropicVersion != "2023-06-01" || p[3].MaxTokens != 4096 {
		t.Errorf("anthropic defaults = %q, %d; want 2023-06-01, 4096", p[3].AnthropicVersion, p[3].MaxTokens)
	}
	for _, w := range c.Warnings() {
		if strings.Contains(w, "version prefix") {
			t.Errorf("warning %q; azure and anthropic base URLs carry no version prefix by design", w)
		}
	}
}

func TestProviderKindErrors(t *testing.T) {
	pv := func(s string) string {
		return "providers: [{name: p, base_url: 'https://h', " + s + "}]\nroutes: [{name: r, targets: [{provider: p}]}]\n"
	}
	for _, tt := range []struct{ name, yaml, want string }{
		{"unknown kind", pv("kind: bedrock"), `providers[0].kind: "bedrock" is not one of openai, azure, anthropic`},
		{"azure needs api_version", pv("kind: azure"), "providers[0].api_version: required with path_style deployments"},
		{"azure path_style", pv("kind: azure, path_style: classic"), `providers[0].path_style: "classic" is not one of deployments, v1`},
		{"azure deployment name", pv("kind: azure, api_version: '2024-10-21', deployments: {gpt-4o: 'a/b'}"), `providers[0].deployments[gpt-4o]: "a/b" may hold only`},
		{"azure api_version chars", pv("kind: azure, api_version: '2024 10'"), `providers[0].api_version: "2024 10" may hold only`},
		{"deployments on openai", pv("deployments: {a: b}"), "providers[0].deployments: applies only to kind: azure (this provider is kind openai)"},
		{"max_tokens on azure", pv("kind: azure, path_style: v1, max_tokens: 10"), "providers[0].max_tokens: applies only to kind: anthropic"},
		{"anthropic max_tokens", pv("kind: anthropic, max_tokens: -1"), "providers[0].max_tokens: -1 must be positive"},
		{"anthropic version chars", pv("kind: anthropic, anthropic_version: '2023/06'"), `providers[0].anthropic_version: "2023/06" may hold only`},
		{"anthropic api_version", pv("kind: anthropic, api_version: x"), "providers[0].api_version: applies only to kind: azure (this provider is kind anthropic)"},
		{"managed header", pv("kind: anthropic, headers: {x-api-key: k}"), `providers[0].headers: "x-api-key" is managed by the gateway for kind anthropic`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.yaml, configs.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%q) = %v; want an error containing %q", tt.yaml, err, tt.want)
			}
		})
	}
}

func TestProviderKindDeploymentWarning(t *testing.T) {
	y := `providers:
  - {name: az, kind: azure, base_url: 'https://r.openai.azure.com', api_version: 2024-10-21, deployments: {gpt-4o-mini: mini-prod}}
routes: [{name: r, targets: [{provider: az, model: gpt-4o-mini}], fallbacks: [{provider: az, model: gpt-4o}]}]
`
	c := mustLoad(t, y, configs.Options{})
	want := `routes[0].fallbacks[0].model: "gpt-4o" has no entry in providers[az].deployments: requests go to a deployment named "gpt-4o"`
	ws := c.Warnings()
	if len(ws) != 1 || ws[0] != want {
		t.Errorf("Warnings() = %q; want [%q]", ws, want)
	}
}
