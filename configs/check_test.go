package configs_test

// What `cairn check` prints for a config with typos and wrong kinds among
// other errors (issue 14.9): every error at once, each with its field path,
// its line and, for a typo, the field that was meant; and the warnings of a
// valid config.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

const typoConfig = `lisen: 127.0.0.1:8080
providers:
  - name: openai
    baseURL: https://api.openai.com/v1
    timeout: soon
routes:
  - name: support-bot
    targets:
      - { provider: openai, weight: 80 }
      - { provider: opneai, wieght: 20, cohort: canary }
    fallbacks: { provider: openai }
    contract: { mode: enforce, schema: refund.json }
    colour: blue
keys:
  - { name: checkout, key_sha256: nothex, rpm: lots }
detection: { window: 30, min_requests: [1] }
`

const warnConfig = `providers:
  - { name: local, base_url: "http://127.0.0.1:11434" }
  - { name: openai, base_url: "https://api.openai.com/v1/" }
routes:
  - name: chat
    match: ["gpt-4o*", "gpt-4o-mini*"]
    targets: [ { provider: openai } ]
  - name: mini
    match: ["gpt-4o-mini", "gpt-4o-mini-*", "o3*"]
    targets: [ { provider: openai } ]
  - name: everything
    match: ["*"]
    targets: [ { provider: local } ]
  - name: late
    match: ["llama-3*", "meta-llama/*"]
    targets: [ { provider: local } ]
  - name: legacy
    match: ["gpt-4o-2024*", "gpt-4o-mini"]
    targets: [ { provider: openai } ]
`

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -run %s -update): %v", t.Name(), err)
	}
	if got != string(want) {
		t.Errorf("text differs from %s (rerun with -update if intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestCheckTypoErrorsGolden(t *testing.T) {
	_, err := load(t, typoConfig, configs.Options{})
	got := err.Error() + "\n"
	golden(t, "typos.golden", got)
	for _, want := range []string{
		`routes[0].targets[1].wieght: unknown field (did you mean "weight"?) at line 10`,
		`lisen: unknown field (did you mean "listen"?)`,
		`providers[0].baseURL: unknown field (did you mean "base_url"?)`,
		`routes[0].colour: unknown field at line 13`,
		// Errors found after decoding are not hidden by the typos.
		`routes[0].targets[1].provider: unknown provider "opneai"`,
		`keys[0].key_sha256: not 64 hex digits`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
	for _, leak := range []string{"configs.", "!!str", "!!seq", "unmarshal", "not found in type"} {
		if strings.Contains(got, leak) {
			t.Errorf("errors speak Go or YAML internals (%q):\n%s", leak, got)
		}
	}
}

func TestCheckWarningsGolden(t *testing.T) {
	c := mustLoad(t, warnConfig, configs.Options{})
	got := strings.Join(c.Warnings(), "\n") + "\n"
	golden(t, "warnings.golden", got)
	for _, want := range []string{
		`routes[0].match[1]: "gpt-4o-mini*" is never used`,
		`routes[1].match[0]: "gpt-4o-mini" is never used: routes[0].match[0] "gpt-4o*" of route "chat"`,
		`routes[2].match[0]: "*" catches every model name`,
		`routes[3].match[0]: "llama-3*" is never used: routes[2].match[0] "*"`,
		`providers[0].base_url: "http://127.0.0.1:11434" has no version prefix`,
		`routes[4]: every match glob of route "legacy" is shadowed: only requests for the model "legacy" reach it`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	for _, quiet := range []string{"routes[1].match[2]", "routes[3].match[1]", "providers[1]", "routes[1]: every", "routes[3]: every"} {
		if strings.Contains(got, quiet) {
			t.Errorf("warning about %s, which is reachable or fine:\n%s", quiet, got)
		}
	}
	// The shipped examples warn about nothing.
	for _, ex := range []string{"demo.yaml", "canary.yaml", "single-provider.yaml", "replicas-redis.yaml"} {
		raw, err := os.ReadFile(ex)
		if err != nil {
			t.Fatal(err)
		}
		c, err := configs.Load(raw, configs.Options{Dir: ".", LookupEnv: func(k string) (string, bool) { return "secret-" + k, true }})
		if err != nil {
			t.Fatalf("%s: %v", ex, err)
		}
		if w := c.Warnings(); len(w) > 0 {
			t.Errorf("%s warns: %q", ex, w)
		}
	}
}
