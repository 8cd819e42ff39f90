package loadtest

import (
	"crypto/sha256"
	"fmt"
	"path"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/configs"
)

// TestManyKeysRoutesConfig: the padded config loads (as `cairn serve`
// would read it), has the asked-for counts, its filler keys authenticate,
// and a client's NAME-x reaches the original route through its glob and
// no filler glob before it.
func TestManyKeysRoutesConfig(t *testing.T) {
	key, secret := benchKey("bench", 0)
	base := configs.Config{
		DataDir:   t.TempDir(),
		Providers: []configs.Provider{{Name: "mock", BaseURL: "http://127.0.0.1:9/v1"}},
		Keys:      []configs.Key{key},
		Routes:    []configs.Route{{Name: "bench", Targets: []configs.Target{{Provider: "mock", Model: "m"}}}},
	}
	for _, n := range []int{1, 10, 3000} {
		cfg := ManyKeysRoutesConfig(base, n, n)
		b, err := yaml.Marshal(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := configs.Load(b, configs.Options{})
		if err != nil {
			t.Fatalf("n=%d: Load = %v", n, err)
		}
		if len(c.Keys) != n || len(c.Routes) != n {
			t.Errorf("n=%d: %d keys and %d routes; want %d each", n, len(c.Keys), len(c.Routes), n)
		}
		secrets := []string{secret}
		if n > 1 {
			secrets = append(secrets, FillerKeySecret(n-2))
		}
		for _, s := range secrets {
			d := sha256.Sum256([]byte(s))
			if k := c.KeyByDigest(&d); k == nil {
				t.Errorf("n=%d: key %q not found", n, s)
			}
		}
		for _, m := range []string{"bench-x", fmt.Sprintf("bench-%d", n), "bench-filler"} {
			var got string
			for _, r := range c.Routes {
				for _, g := range r.Globs {
					if ok, _ := path.Match(g, m); ok && got == "" {
						got = r.Name
					}
				}
			}
			if got != "bench" {
				t.Errorf("n=%d: %q matches route %q first; want bench", n, m, got)
			}
		}
	}
	if len(base.Routes[0].Match) != 0 || len(base.Keys) != 1 {
		t.Errorf("ManyKeysRoutesConfig changed its argument: %+v", base)
	}
}
