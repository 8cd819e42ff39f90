package configs_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// scaleConfig is a config with n keys and n glob routes; key k7's secret
// and route r5's prompt depend on variant.
func scaleConfig(t *testing.T, n int, variant string) *configs.Config {
	t.Helper()
	var y strings.Builder
	y.WriteString(okProviders + "routes:\n")
	for i := range n {
		prompt := "v1"
		if i == 5 {
			prompt = variant
		}
		fmt.Fprintf(&y, "  - {name: r%d, match: [r%d-*], prompt: {version: %s}, targets: [{provider: openai}]}\n", i, i, prompt)
	}
	y.WriteString("keys:\n")
	for i := range n {
		secret := fmt.Sprint("s", i)
		if i == 7 {
			secret += variant
		}
		fmt.Fprintf(&y, "  - {name: k%d, key_sha256: %s}\n", i, keyDigest(secret))
	}
	return mustLoad(t, y.String(), configs.Options{})
}

// TestDiffManyKeysRoutes: the reload diffs (DiffConfig, Diff) over 10,000
// keys and routes report exactly what changed (a reload with 10,000 of
// each once took about 30 s, looking every key and route up by a scan of
// the other config).
func TestDiffManyKeysRoutes(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("loads 2 x 10,000 keys and routes and times the diffs")
	}
	timeDiffs := func(a, b *configs.Config, runs int) time.Duration {
		var ds []time.Duration
		for range runs {
			start := time.Now()
			configs.DiffConfig(a, b)
			configs.Diff(a.State(), b.State())
			ds = append(ds, time.Since(start))
		}
		return slices.Min(ds)
	}
	smallA, smallB := scaleConfig(t, 500, "v1"), scaleConfig(t, 500, "v2")
	a, b := scaleConfig(t, 10000, "v1"), scaleConfig(t, 10000, "v2")
	var paths []string
	for _, c := range configs.DiffConfig(a, b) {
		paths = append(paths, c.Path)
	}
	if want := []string{"keys[k7].key_sha256", "keys[k7].key"}; !slices.Equal(paths, want) {
		t.Errorf("DiffConfig paths = %v; want %v", paths, want)
	}
	paths = nil
	for _, c := range configs.Diff(a.State(), b.State()) {
		paths = append(paths, c.Path)
	}
	if want := []string{"config_revision", "routes[r5].prompt.version"}; !slices.Equal(paths, want) {
		t.Errorf("Diff paths = %v; want %v", paths, want)
	}
	// The growth is reported, not asserted: a wall-clock ratio is at the
	// mercy of the machine's load (it reached 160x once beside other
	// tests, against 24x alone). The lookups by name are what keeps it
	// linear; this prints the figure for a human (-v).
	small, large := timeDiffs(smallA, smallB, 7), timeDiffs(a, b, 3)
	t.Logf("diffs of 500 keys and routes %v, of 10,000 %v (%.0fx; linear: 20x, a scan per key: ~400x)", small, large, float64(large)/float64(small))
}
