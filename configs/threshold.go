package configs

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Severity is how loudly an incident asks for attention.
type Severity string

// The two severities of the incident playbook: an investigate incident asks
// for a look; a page incident pages, and only it lets the automatic rollback
// act.
const (
	SeverityInvestigate Severity = "investigate"
	SeverityPage        Severity = "page"
)

// Threshold is a detection signal's two severity levels. In YAML it is a
// bare number, which is the page level (how single thresholds were written
// before severities existed), or a mapping {investigate: X, page: Y}. A zero
// level is unset: that severity is not raised by the signal.
type Threshold struct {
	Investigate float64 `yaml:"investigate,omitempty" json:"investigate,omitempty"`
	Page        float64 `yaml:"page,omitempty" json:"page,omitempty"`
}

// Level returns the severity a value crossing the threshold warrants, or ""
// when it crosses neither level. above reports whether v is beyond level x.
func (t Threshold) Level(above func(x float64) bool) Severity {
	switch {
	case t.Page != 0 && above(t.Page):
		return SeverityPage
	case t.Investigate != 0 && above(t.Investigate):
		return SeverityInvestigate
	}
	return ""
}

// Lowest returns the level first crossed: Investigate when set, else Page.
func (t Threshold) Lowest() float64 {
	if t.Investigate != 0 {
		return t.Investigate
	}
	return t.Page
}

// UnmarshalYAML accepts a number or {investigate, page}; unknown keys and
// non-numbers are refused with the line.
func (t *Threshold) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var v float64
		if err := n.Decode(&v); err != nil { // YAML's own numbers: .nan, .inf, 1e3
			return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a number or {investigate: X, page: Y}", n.Line, n.Value)}}
		}
		*t = Threshold{Page: v}
		return nil
	case yaml.MappingNode:
		var out Threshold
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var x float64
			if v.Kind != yaml.ScalarNode || v.Decode(&x) != nil {
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s: %q is not a number", v.Line, k.Value, v.Value)}}
			}
			switch k.Value {
			case "investigate":
				out.Investigate = x
			case "page":
				out.Page = x
			default:
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: field %s not found in type configs.Threshold (want investigate or page)", k.Line, k.Value)}}
			}
		}
		*t = out
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a number or {investigate: X, page: Y}", n.Line)}}
}
