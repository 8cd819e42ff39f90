package configs

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestThresholdYAML(t *testing.T) {
	cases := []struct {
		in   string
		want Threshold
		err  string
	}{
		{"x: 0.2", Threshold{Page: 0.2}, ""},
		{"x: {investigate: 2, page: 5}", Threshold{Investigate: 2, Page: 5}, ""},
		{"x: {page: 1.5}", Threshold{Page: 1.5}, ""},
		{"x: {investigate: 2, pgae: 5}", Threshold{}, "pgae"},
		{"x: {investigate: high}", Threshold{}, "not a number"},
		{"x: lots", Threshold{}, "not a number"},
		{"x: [1, 2]", Threshold{}, "expected a number"},
	}
	for _, c := range cases {
		var v struct{ X Threshold }
		err := yaml.Unmarshal([]byte(c.in), &v)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v; want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || v.X != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.in, v.X, err, c.want)
		}
	}
}

func TestThresholdLevel(t *testing.T) {
	th := Threshold{Investigate: 2, Page: 5}
	for v, want := range map[float64]Severity{1: "", 3: SeverityInvestigate, 6: SeverityPage} {
		if got := th.Level(func(x float64) bool { return v > x }); got != want {
			t.Errorf("Level(%v) = %q; want %q", v, got, want)
		}
	}
	if got := (Threshold{Page: 5}).Level(func(x float64) bool { return 3 > x }); got != "" {
		t.Errorf("page-only threshold at 3 = %q", got)
	}
}
