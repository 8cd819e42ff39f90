package configs

import (
	"encoding/json"
	"strings"
	"testing"
)

// A provider header whose name says it carries a credential (x-api-key,
// authorization, …) is a secret: the audit diff says it changed, never
// what it was or became. Ordinary headers show their values. (Before,
// both values of a rotated x-api-key were written to audit.jsonl.)
func TestDiffConfigProviderSecretHeaders(t *testing.T) {
	load := func(key, org string) *Config {
		t.Helper()
		c, err := Load([]byte(`
providers:
  - { name: p, base_url: "http://127.0.0.1:1/v1", headers: { x-api-key: "`+key+`", X-Auth-Token: "tok-`+key+`", x-org: "`+org+`" } }
routes:
  - { name: r, targets: [ { provider: p, model: m } ] }
`), Options{})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return c
	}
	a, b := load("hdr-secret-OLD-0123456789", "org-one"), load("hdr-secret-NEW-9876543210", "org-two")
	changes := DiffConfig(a, b)
	got := map[string]Change{}
	for _, c := range changes {
		got[c.Path] = c
	}
	for _, p := range []string{"providers[p].headers.x-api-key", "providers[p].headers.X-Auth-Token"} {
		if c, ok := got[p]; !ok || c.From != SecretChanged || c.To != SecretChanged {
			t.Errorf("change %s = %+v (present %v); want from and to %q", p, c, ok, SecretChanged)
		}
	}
	if c := got["providers[p].headers.x-org"]; c.From != "org-one" || c.To != "org-two" {
		t.Errorf("ordinary header change = %+v; want its values", c)
	}
	js, _ := json.Marshal(changes)
	if strings.Contains(string(js), "hdr-secret") {
		t.Errorf("the diff carries a secret header value: %s", js)
	}
	if d := DiffConfig(a, load("hdr-secret-OLD-0123456789", "org-one")); len(d) != 0 {
		t.Errorf("unchanged secret headers diff = %+v; want none", d)
	}
	// Added and removed secret headers say changed too, without the value.
	c := load("hdr-secret-OLD-0123456789", "org-one")
	delete(c.Providers[0].Headers, "x-api-key")
	for _, d := range [][]Change{DiffConfig(a, c), DiffConfig(c, a)} {
		js, _ := json.Marshal(d)
		if len(d) != 1 || d[0].Path != "providers[p].headers.x-api-key" || d[0].From != SecretChanged || strings.Contains(string(js), "hdr-secret") {
			t.Errorf("secret header added or removed: %s; want one change, shown as changed", js)
		}
	}
}
