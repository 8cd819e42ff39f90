package configs_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// TestLoadRefusesInexactIntegers: integers beyond 2^53 in flags (frozen
// into incident snapshots and re-hashed after a JSON round trip) or in key
// limits are refused at load with the field path (issue 12.13: such a flag
// made the frozen hash of every incident on the route unverifiable).
func TestLoadRefusesInexactIntegers(t *testing.T) {
	route := func(flags string) string {
		return okProviders + "routes: [{name: r, targets: [{provider: openai}], flags: " + flags + "}]\n"
	}
	tests := []struct{ name, yaml, want string }{
		{"flag above 2^53", route("{big: 9007199254740993}"), "routes[0].flags.big: 9007199254740993 cannot be kept exact"},
		{"negative flag", route("{neg: -9007199254740993}"), "routes[0].flags.neg: -9007199254740993"},
		{"uint64 flag", route("{u: 18446744073709551615}"), "routes[0].flags.u: 18446744073709551615"},
		{"nested flag", route("{limits: {caps: [1, 2, 9223372036854775807]}}"), "routes[0].flags.limits.caps[2]: 9223372036854775807"},
		{"rpm", okBase + "keys: [{name: k, key_env: SET, rpm: 9007199254740993}]\n", "keys[0]: rpm and tpm must be at most 2^53"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.yaml, configs.Options{LookupEnv: env(map[string]string{"SET": "v"})})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v; want an error containing %q", err, tt.want)
			}
		})
	}
	// 2^53 itself and every float survive the round trip, and load.
	c := mustLoad(t, route("{edge: 9007199254740992, f: 1.0e+30, s: '9007199254740993'}"), configs.Options{})
	st := c.State()
	b, _ := json.Marshal(st)
	var back configs.State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Errorf("state changed in a JSON round trip:\n%s\n%s", b, b2)
	}
}
