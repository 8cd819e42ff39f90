package configs_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// keyDigest is the key_sha256 of secret.
func keyDigest(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }

// TestKeyByDigest: every key, from key_env or key_sha256, is found by its
// digest among thousands; digests that share all but one byte with a real
// key (first, middle or last) are refused; a Config built by hand (no
// index) answers the same.
func TestKeyByDigest(t *testing.T) {
	const n = 2000
	var y strings.Builder
	y.WriteString(okProviders + "routes: [{name: r, targets: [{provider: openai}]}, {name: s, targets: [{provider: openai}]}]\nkeys:\n")
	y.WriteString("  - { name: from-env, key_env: GW_KEY, routes: [s] }\n")
	for i := range n {
		fmt.Fprintf(&y, "  - { name: k%d, key_sha256: %s }\n", i, keyDigest(fmt.Sprint("secret-", i)))
	}
	c := mustLoad(t, y.String(), configs.Options{LookupEnv: env(map[string]string{"GW_KEY": "sk-env-key"})})
	hand := &configs.Config{Keys: c.Keys}

	find := func(cfg *configs.Config, secret string) string {
		d := sha256.Sum256([]byte(secret))
		if k := cfg.KeyByDigest(&d); k != nil {
			return k.Name
		}
		return ""
	}
	for _, cfg := range []*configs.Config{c, hand} {
		for _, tt := range []struct{ secret, want string }{
			{"sk-env-key", "from-env"},
			{"secret-0", "k0"},
			{fmt.Sprint("secret-", n-1), fmt.Sprint("k", n-1)},
			{"secret-", ""},
			{"sk-env-ke", ""},
			{"", ""},
		} {
			if got := find(cfg, tt.secret); got != tt.want {
				t.Errorf("KeyByDigest(sha256(%q)) = %q; want %q (indexed %v)", tt.secret, got, tt.want, cfg == c)
			}
		}
		real := sha256.Sum256([]byte("secret-7"))
		for _, i := range []int{0, 15, 31} {
			d := real
			d[i] ^= 1
			if k := cfg.KeyByDigest(&d); k != nil {
				t.Errorf("a digest differing from k7's in byte %d found key %s", i, k.Name)
			}
		}
		if k := cfg.KeyByDigest(&real); k == nil || k != &cfg.Keys[8] {
			t.Errorf("KeyByDigest(k7) = %p; want &Keys[8] (the config's own key)", k)
		}
	}
}

// TestKeyAllows: a key without routes may use any route; with routes only
// those, indexed or not.
func TestKeyAllows(t *testing.T) {
	c := mustLoad(t, okProviders+`routes: [{name: a, targets: [{provider: openai}]}, {name: b, targets: [{provider: openai}]}]
keys:
  - { name: all, key_sha256: `+keyDigest("1")+` }
  - { name: only-b, key_sha256: `+keyDigest("2")+`, routes: [b] }
`, configs.Options{})
	hand := configs.Key{Routes: []string{"b"}}
	for _, tt := range []struct {
		k     *configs.Key
		route string
		want  bool
	}{
		{&c.Keys[0], "a", true}, {&c.Keys[0], "zzz", true},
		{&c.Keys[1], "a", false}, {&c.Keys[1], "b", true}, {&c.Keys[1], "", false},
		{&hand, "a", false}, {&hand, "b", true},
	} {
		if got := tt.k.Allows(tt.route); got != tt.want {
			t.Errorf("key %q Allows(%q) = %v; want %v", tt.k.Name, tt.route, got, tt.want)
		}
	}
}
