package configs

import (
	"fmt"
	"slices"
	"strings"
)

// Provider kinds: the wire a provider speaks (issue 19).
//
//   - openai (the default): an OpenAI-compatible API under base_url, the key
//     sent as "Authorization: Bearer".
//   - azure: Azure OpenAI. base_url is the resource endpoint
//     (https://NAME.openai.azure.com; a path there is kept as a prefix, for
//     a gateway such as APIM in front). The key goes in the api-key header.
//     path_style "deployments" (the default) posts to
//     /openai/deployments/{deployment}/chat/completions?api-version={api_version}
//     and needs api_version; path_style "v1" posts to /openai/v1/chat/completions
//     (api_version, when set, is sent as ?api-version= there too). The
//     deployment of a model is deployments[model], or the model's own name
//     when the map has no entry; it is also sent as the body's "model".
//   - anthropic: the Anthropic Messages API. base_url is https://api.anthropic.com
//     (a base_url without a path gets /v1); chat completions are translated
//     to POST {base_url}/messages and back, the key is sent as x-api-key
//     with anthropic-version (default 2023-06-01), and max_tokens
//     (default 4096) is sent when the request sets neither max_tokens nor
//     max_completion_tokens: the Messages API requires it.
const (
	KindOpenAI    = "openai"
	KindAzure     = "azure"
	KindAnthropic = "anthropic"

	PathStyleDeployments = "deployments"
	PathStyleV1          = "v1"

	DefaultAnthropicVersion = "2023-06-01"
	DefaultAnthropicMax     = 4096
)

// kindDefaults fills the defaults that depend on the provider's kind.
func (p *Provider) kindDefaults() {
	if p.Kind == "" {
		p.Kind = KindOpenAI
	}
	switch p.Kind {
	case KindAzure:
		if p.PathStyle == "" {
			p.PathStyle = PathStyleDeployments
		}
	case KindAnthropic:
		if p.AnthropicVersion == "" {
			p.AnthropicVersion = DefaultAnthropicVersion
		}
		if p.MaxTokens == 0 {
			p.MaxTokens = DefaultAnthropicMax
		}
	}
}

// Deployment returns the Azure deployment that serves model: its entry in
// Deployments, else the model's own name.
func (p *Provider) Deployment(model string) string {
	if d, ok := p.Deployments[model]; ok {
		return d
	}
	return model
}

// providerKind checks the kind and the fields that belong to it; a field
// set for another kind is refused rather than ignored.
func (v *validator) providerKind(f string, p *Provider) {
	kinds := []string{KindOpenAI, KindAzure, KindAnthropic}
	if !slices.Contains(kinds, p.Kind) {
		v.errf("%s.kind: %q is not one of openai, azure, anthropic", f, p.Kind)
		return
	}
	only := func(field, kind string, set bool) {
		if set && p.Kind != kind {
			v.errf("%s.%s: applies only to kind: %s (this provider is kind %s)", f, field, kind, p.Kind)
		}
	}
	only("deployments", KindAzure, len(p.Deployments) > 0)
	only("api_version", KindAzure, p.APIVersion != "")
	only("path_style", KindAzure, p.PathStyle != "")
	only("anthropic_version", KindAnthropic, p.AnthropicVersion != "")
	only("max_tokens", KindAnthropic, p.MaxTokens != 0)
	switch p.Kind {
	case KindAzure:
		switch p.PathStyle {
		case PathStyleDeployments:
			if p.APIVersion == "" {
				v.errf("%s.api_version: required with path_style deployments (e.g. 2024-10-21)", f)
			}
		case PathStyleV1:
		default:
			v.errf("%s.path_style: %q is not one of deployments, v1", f, p.PathStyle)
		}
		if p.APIVersion != "" && !pathSafe(p.APIVersion) {
			v.errf("%s.api_version: %q may hold only letters, digits, '.', '_' and '-'", f, p.APIVersion)
		}
		for m, d := range p.Deployments {
			switch {
			case m == "":
				v.errf("%s.deployments: a model name is empty", f)
			case !pathSafe(d):
				v.errf("%s.deployments[%s]: %q may hold only letters, digits, '.', '_' and '-'", f, m, d)
			}
		}
	case KindAnthropic:
		if !pathSafe(p.AnthropicVersion) {
			v.errf("%s.anthropic_version: %q may hold only letters, digits, '.', '_' and '-'", f, p.AnthropicVersion)
		}
		if p.MaxTokens < 1 {
			v.errf("%s.max_tokens: %d must be positive", f, p.MaxTokens)
		}
	}
	for h := range p.Headers {
		switch l := strings.ToLower(h); {
		case l == "api-key" && p.Kind == KindAzure, l == "x-api-key" && p.Kind == KindAnthropic,
			l == "anthropic-version" && p.Kind == KindAnthropic:
			v.errf("%s.headers: %q is managed by the gateway for kind %s", f, h, p.Kind)
		}
	}
}

// pathSafe reports whether s is non-empty and holds only characters that
// need no escaping in a URL path or query.
func pathSafe(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// kindWarnings names route targets on an Azure provider whose model has no
// entry in deployments while the map has others: the request then goes
// to a deployment named after the model, which is often a typo.
func (c *Config) kindWarnings() []string {
	var out []string
	byName := make(map[string]*Provider, len(c.Providers))
	for i := range c.Providers {
		byName[c.Providers[i].Name] = &c.Providers[i]
	}
	check := func(f string, t Target) {
		p := byName[t.Provider]
		if p == nil || p.Kind != KindAzure || len(p.Deployments) == 0 || t.Model == "" {
			return
		}
		if _, ok := p.Deployments[t.Model]; !ok {
			out = append(out, fmt.Sprintf("%s.model: %q has no entry in providers[%s].deployments: requests go to a deployment named %q", f, t.Model, p.Name, t.Model))
		}
	}
	for i, r := range c.Routes {
		for j, t := range r.Targets {
			check(fmt.Sprintf("routes[%d].targets[%d]", i, j), t)
		}
		for j, t := range r.Fallbacks {
			check(fmt.Sprintf("routes[%d].fallbacks[%d]", i, j), t)
		}
	}
	return out
}
