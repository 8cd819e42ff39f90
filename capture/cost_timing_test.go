package capture

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// BenchmarkRecordCost is the money part of the response-side checks
// (issue 16.3): pricing one record on the writer goroutine, against a
// table of 20 prices, the model priced or not. Compare with
// BenchmarkWriterProcessTypical (the whole record) in the same run:
//
//	go test ./capture -run '^$' -bench 'RecordCost|WriterProcessTypical/2KB' -count 5
func BenchmarkRecordCost(b *testing.B) {
	var prices []configs.Price
	for i := range 19 {
		prices = append(prices, configs.Price{Provider: "openai", Model: fmt.Sprintf("model-%d", i), Input: 1, Output: 2})
	}
	prices = append(prices, configs.Price{Provider: "openai", Model: "gpt-4o-mini", Input: 0.15, Output: 0.6})
	for _, model := range []string{"gpt-4o-mini", "unpriced"} {
		b.Run("model="+model, func(b *testing.B) {
			w := &Writer{log: slog.New(slog.DiscardHandler)}
			w.SetPricing(NewPricing(&configs.Config{Pricing: prices}))
			r := &Record{Provider: "openai", Model: model, Target: "openai/" + model, Usage: Usage{PromptTokens: 900, CompletionTokens: 120, TotalTokens: 1020}}
			b.ReportAllocs()
			for b.Loop() {
				r.CostUSD = nil
				w.price(r)
			}
		})
	}
}
