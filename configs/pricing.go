package configs

import (
	"fmt"
	"math"
)

// Price is what one provider charges for one model, in USD per million
// tokens. A model without a Price records cost_usd null (never 0) and the
// gateway warns once per model.
type Price struct {
	Provider string `yaml:"provider" json:"provider"`
	// Model is the upstream model name as the target sends it ("*" prices
	// every model of the provider that has no price of its own).
	Model string `yaml:"model" json:"model"`
	// Input is USD per 1M prompt tokens that were not served from the
	// provider's prompt cache.
	Input float64 `yaml:"input" json:"input"`
	// CachedInput is USD per 1M cached prompt tokens
	// (usage.prompt_tokens_details.cached_tokens). Default: Input.
	CachedInput *float64 `yaml:"cached_input" json:"cached_input,omitempty"`
	// Output is USD per 1M completion tokens.
	Output float64 `yaml:"output" json:"output"`
}

// CachedInputPrice returns CachedInput, or Input when it is unset.
func (p *Price) CachedInputPrice() float64 {
	if p.CachedInput != nil {
		return *p.CachedInput
	}
	return p.Input
}

// Cost returns the USD cost of a request's usage at price p: uncached
// prompt tokens at Input, cached ones at CachedInput, completion tokens
// at Output.
func (p *Price) Cost(prompt, cached, completion int) float64 {
	cached = min(max(cached, 0), max(prompt, 0))
	return (float64(prompt-cached)*p.Input + float64(cached)*p.CachedInputPrice() + float64(completion)*p.Output) / 1e6
}

// PriceFor returns the price of provider/model: the exact entry, else the
// provider's "*" entry, else nil.
func (c *Config) PriceFor(provider, model string) *Price {
	var wild *Price
	for i := range c.Pricing {
		p := &c.Pricing[i]
		if p.Provider != provider {
			continue
		}
		if p.Model == model {
			return p
		}
		if p.Model == "*" {
			wild = p
		}
	}
	return wild
}

func (v *validator) pricing(ps []Price, providers map[string]bool) {
	seen := map[[2]string]bool{}
	for i := range ps {
		p := &ps[i]
		f := fmt.Sprintf("pricing[%d]", i)
		if p.Provider == "" {
			v.errf("%s.provider: required", f)
		} else if !providers[p.Provider] {
			v.errf("%s.provider: unknown provider %q", f, p.Provider)
		}
		if p.Model == "" {
			v.errf("%s.model: required (\"*\" prices every model of the provider)", f)
		}
		k := [2]string{p.Provider, p.Model}
		if seen[k] {
			v.errf("%s: duplicate price for %s/%s", f, p.Provider, p.Model)
		}
		seen[k] = true
		v.price(f+".input", p.Input)
		v.price(f+".output", p.Output)
		if p.CachedInput != nil {
			v.price(f+".cached_input", *p.CachedInput)
		}
	}
}

func (v *validator) price(f string, x float64) {
	if !(x >= 0) || math.IsInf(x, 1) {
		v.errf("%s: %v must be a finite number of USD per 1M tokens, 0 or more", f, x)
	}
}
