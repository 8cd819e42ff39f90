package configs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// fuzzSecret is what every environment variable holds while fuzzing; an
// error may echo the config's own text but never this.
const fuzzSecret = "fuzz-SECRET-4b1d"

// FuzzLoad checks that Load never panics and returns exactly one of a config
// and an error, that a config it returns has a stable revision, and that no
// error carries a secret read from the environment. Seeds: a minimal config,
// every example config, the golden multi-error config and hostile ones.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(okBase))
	f.Add([]byte(goldenConfig))
	f.Add([]byte(stateBase))
	examples, _ := filepath.Glob("*.yaml")
	for _, p := range examples {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"---\n",
		"~\n",
		"[]\n",
		"listen: [\n",
		okBase + "---\n" + okBase,
		okBase + "lisen: x\n",
		okBase + "server: {read_timeout: 3x}\n",
		okBase + "keys: [{name: k, rpm: fast}]\n",
		okBase + "keys: [{name: k, key_env: K}, {name: j, key_env: J}]\n",
		okBase + "redis_url: 'http://u:hunter2@h'\n",
		okBase + "admin_token_env: T\nadmin_listen: '0.0.0.0:1'\n",
		"providers: [{name: p, base_url: 'http://169.254.169.254/v1'}]\nroutes: [{name: r, targets: [{provider: p}]}]\n",
		"providers: [{name: p, base_url: 'http://[fe80::1%25eth0]/v1'}]\nroutes: [{name: r, targets: [{provider: p}]}]\n",
		okProviders + "routes: [{name: r, targets: [{provider: openai}], flags: {a: .nan, b: {1: x}, c: [.inf]}}]\n",
		okProviders + "routes: [{name: r, targets: [{provider: openai, weight: 9223372036854775807}, {provider: openai, weight: 9223372036854775807, cohort: c}]}]\n",
		okProviders + "routes: [{name: r, targets: [{provider: openai}], contract: {schema_file: schemas/refund.json}}]\n",
		okProviders + "routes: [{name: r, targets: [{provider: openai}], contract: {schema_file: /dev/zero}}]\n",
		okProviders + "routes: [{name: r, targets: [{provider: openai}], match: ['[', '\\\\']}]\n",
		okBase + "detection: {error_rate: .nan, latency_p99_ratio: .inf, window: -1s}\n",
		okBase + "masking: {custom: [{name: a, pattern: '(?:a*)*'}, {name: b, pattern: '\\\\'}]}\n",
		"a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\n",
		"<<: {listen: x}\n",
		"!!binary aGVsbG8=\n",
		strings.Repeat("[", 1000) + strings.Repeat("]", 1000),
	} {
		f.Add([]byte(s))
	}
	e := func(string) (string, bool) { return fuzzSecret, true }
	f.Fuzz(func(t *testing.T, data []byte) {
		o := configs.Options{LookupEnv: e, Dir: "."}
		c, err := configs.Load(data, o)
		if (c == nil) == (err == nil) {
			t.Fatalf("Load(%q) = %v, %v; want exactly one of config and error", data, c, err)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Load(%q) returned an empty error", data)
			}
			if strings.Contains(err.Error(), fuzzSecret) && !bytes.Contains(data, []byte(fuzzSecret)) {
				t.Fatalf("Load(%q) = %q; the error holds a secret", data, err)
			}
			return
		}
		if !strings.HasPrefix(c.Revision, "rev_") {
			t.Fatalf("Load(%q).Revision = %q; want rev_…", data, c.Revision)
		}
		c2, err := configs.Load(data, o)
		if err != nil || c2.Revision != c.Revision {
			t.Fatalf("second Load(%q) = %v, %v; want revision %s", data, c2, err, c.Revision)
		}
		_ = configs.Diff(c.State(), c2.State())
	})
}
