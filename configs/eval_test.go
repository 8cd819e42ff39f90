package configs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// Issue 16: eval, pricing and two-severity thresholds are validated with
// field paths, and single numbers keep working as the page level.
func TestLoadEvalPricingSeverities(t *testing.T) {
	c := mustLoad(t, okBase, configs.Options{})
	e := c.Detection.Eval
	if len(e.Scale) != 2 || e.Scale[0] != 0 || e.Scale[1] != 1 || e.Window.D() != 10*time.Minute || e.MinScores != 30 ||
		e.DropPoints != (configs.Threshold{Investigate: 2, Page: 5}) {
		t.Errorf("eval defaults = %+v", e)
	}
	if c.Detection.CostPerSuccessRatio != (configs.Threshold{Investigate: 1.3, Page: 1.5}) {
		t.Errorf("cost_per_success_ratio default = %+v", c.Detection.CostPerSuccessRatio)
	}
	c = mustLoad(t, okBase+`detection: {error_rate: {investigate: 0.05, page: 0.2}, eval: {scale: [0, 10], drop_points: 4, names: [faithfulness]}}
pricing: [{provider: openai, model: gpt-4o-mini, input: 0.15, cached_input: 0.075, output: 0.6}, {provider: openai, model: "*", input: 1, output: 2}]
`, configs.Options{})
	if c.Detection.ErrorRate != (configs.Threshold{Investigate: 0.05, Page: 0.2}) || c.Detection.Eval.DropPoints != (configs.Threshold{Page: 4}) {
		t.Errorf("detection = %+v", c.Detection)
	}
	if p := c.Detection.Eval.Point(); p != 0.1 {
		t.Errorf("Point() = %v; want 0.1 on [0, 10]", p)
	}
	p := c.PriceFor("openai", "gpt-4o-mini")
	if p == nil || p.Cost(1_000_000, 500_000, 1_000_000) != 0.075+0.0375+0.6 {
		t.Errorf("PriceFor(gpt-4o-mini) = %+v, cost %v", p, p.Cost(1_000_000, 500_000, 1_000_000))
	}
	if p := c.PriceFor("openai", "other"); p == nil || p.Model != "*" {
		t.Errorf("PriceFor(other) = %+v; want the * entry", p)
	}
	if p := c.PriceFor("nope", "gpt-4o-mini"); p != nil {
		t.Errorf("PriceFor(unknown provider) = %+v; want nil", p)
	}

	for _, tt := range []struct{ name, yaml, want string }{
		{"scale order", "detection: {eval: {scale: [1, 0]}}", "detection.eval.scale: [1, 0] must be two finite numbers, min below max"},
		{"scale length", "detection: {eval: {scale: [1]}}", "detection.eval.scale: want [min, max], got 1 numbers"},
		{"min_scores", "detection: {eval: {min_scores: -3}}", "detection.eval.min_scores: -3 must be positive"},
		{"drop order", "detection: {eval: {drop_points: {investigate: 5, page: 2}}}", "detection.eval.drop_points: investigate 5 must be below page 2"},
		{"drop range", "detection: {eval: {drop_points: {investigate: 500, page: 600}}}", "detection.eval.drop_points.investigate: 500 is not in (0, 100] points"},
		{"name", "detection: {eval: {names: ['a b']}}", `detection.eval.names[0]: "a b" must be 1–64 letters`},
		{"rate page", "detection: {error_rate: {investigate: 0.1, page: 3}}", "detection.error_rate.page: 3 is not in (0, 1]"},
		{"cost ratio", "detection: {cost_per_success_ratio: {investigate: 0.9}}", "detection.cost_per_success_ratio.investigate: 0.9 must be greater than 1"},
		{"threshold key", "detection: {error_rate: {investigat: 0.1}}", "investigat"},
		{"pricing provider", "pricing: [{provider: nope, model: m, input: 1, output: 1}]", `pricing[0].provider: unknown provider "nope"`},
		{"pricing model", "pricing: [{provider: openai, input: 1, output: 1}]", "pricing[0].model: required"},
		{"pricing negative", "pricing: [{provider: openai, model: m, input: -1, output: 1}]", "pricing[0].input: -1 must be a finite number"},
		{"pricing cached", "pricing: [{provider: openai, model: m, input: 1, output: 1, cached_input: .nan}]", "pricing[0].cached_input: NaN must be"},
		{"pricing duplicate", "pricing: [{provider: openai, model: m, input: 1, output: 1}, {provider: openai, model: m, input: 2, output: 1}]", "pricing[1]: duplicate price for openai/m"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, okBase+tt.yaml+"\n", configs.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%s) = %v; want %q", tt.yaml, err, tt.want)
			}
		})
	}
}
