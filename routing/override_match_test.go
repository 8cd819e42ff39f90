package routing

import (
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// TestOverrideKeepsGlobMatching: a table an override derives (a prompt
// revert, a cohort rollback) still matches glob routes. The prompt
// override once built its table without the glob matcher, and the next
// request for a glob-routed model crashed the gateway.
func TestOverrideKeepsGlobMatching(t *testing.T) {
	tb := globTable(t, 3, func(i int) []string { return []string{"fam-" + string(rune('a'+i)) + "-*"} })
	l := NewLive(tb)
	if _, _, err := l.RevertPrompt("route-1", configs.Prompt{Version: "v17", System: "be brief"}); err != nil {
		t.Fatal(err)
	}
	for m, want := range map[string]string{"fam-a-x": "route-0", "fam-b-y": "route-1", "none": "<nil>", "route-2": "route-2"} {
		if got := routeName(l.Load().Match(m)); got != want {
			t.Errorf("after a prompt override Match(%q) = %s; want %s", m, got, want)
		}
	}
}
