package capture

import (
	"github.com/cairnhq/cairn/configs"
)

// maxUnpricedWarned bounds the provider/model pairs the writer remembers
// having warned about.
const maxUnpricedWarned = 1000

// Pricing prices records (issue 16.3): USD per million input, cached input
// and output tokens, per provider and model. It is immutable; a reload
// swaps it with Writer.SetPricing.
type Pricing struct {
	prices []configs.Price
}

// NewPricing returns the pricing of the config's pricing: section.
func NewPricing(c *configs.Config) *Pricing {
	if c == nil {
		return &Pricing{}
	}
	return &Pricing{prices: append([]configs.Price(nil), c.Pricing...)}
}

// Cost returns the cost of r's usage at its provider's and model's price,
// and false when that model has no price.
func (p *Pricing) Cost(r *Record) (float64, bool) {
	if p == nil || r.Provider == "" {
		return 0, false
	}
	c := configs.Config{Pricing: p.prices}
	pr := c.PriceFor(r.Provider, r.Model)
	if pr == nil {
		return 0, false
	}
	return pr.Cost(r.Usage.PromptTokens, r.Usage.CachedTokens, r.Usage.CompletionTokens), true
}

// SetPricing makes the writer price every record it takes from now on
// with p (a reload that changed pricing). Safe for concurrent use.
func (w *Writer) SetPricing(p *Pricing) { w.pricing.Store(p) }

// price sets r.CostUSD, or leaves it null and warns once per provider and
// model when the model has usage and no price. Safe for concurrent use
// (the writer's preparers).
func (w *Writer) price(r *Record) {
	if r.Provider == "" {
		return
	}
	if cost, ok := w.pricing.Load().Cost(r); ok {
		r.cost = cost
		r.CostUSD = &r.cost
		return
	}
	if r.Usage.TotalTokens+r.Usage.PromptTokens+r.Usage.CompletionTokens == 0 {
		return
	}
	// The configured target names the model ("provider/*" when it passes
	// the client's model through: a client's string is not logged).
	k := r.Target
	if k == "" {
		k = r.Provider + "/" + r.Model
	}
	w.unpricedMu.Lock()
	defer w.unpricedMu.Unlock()
	if w.unpriced[k] || len(w.unpriced) >= maxUnpricedWarned {
		return
	}
	if w.unpriced == nil {
		w.unpriced = map[string]bool{}
	}
	w.unpriced[k] = true
	w.log.Warn("capture: no price for this model; its records carry cost_usd null (add it to pricing:)", "target", k)
}
