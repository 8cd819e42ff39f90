package incidents

import (
	"testing"

	"github.com/cairnhq/cairn/configs"
)

func TestIncumbent(t *testing.T) {
	ts := func(pairs ...any) []configs.TargetState {
		var out []configs.TargetState
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, configs.TargetState{Cohort: pairs[i].(string), Weight: pairs[i+1].(int)})
		}
		return out
	}
	tests := []struct {
		name    string
		targets []configs.TargetState
		want    string
	}{
		{"stable named", ts("canary", 90, "stable", 10), "stable"},
		{"no stable: heaviest", ts("blue", 30, "green", 70), "green"},
		{"tie: first", ts("blue", 50, "green", 50), "blue"},
		{"stable rolled back", ts("stable", 0, "a", 20, "b", 80), "b"},
		{"summed per cohort", ts("a", 40, "b", 30, "b", 30), "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := incumbent(&configs.RouteState{Targets: tt.targets}); got != tt.want {
				t.Errorf("incumbent(%v) = %q; want %q", tt.targets, got, tt.want)
			}
		})
	}
}
