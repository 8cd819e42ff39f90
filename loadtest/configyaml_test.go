package loadtest

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairnhq/cairn/configs"
)

// TestMarshalConfigSameConfig: the compact YAML loads to the same config
// (same revision, same live state) as the plain encoding, with a weight
// of 0, a false flag and the non-default booleans kept; a config padded to
// 10,000 keys and 10,000 routes fits configs.MaxFileBytes.
func TestMarshalConfigSameConfig(t *testing.T) {
	key, _ := benchKey("k", 60)
	key.FailClosed = true
	key.Routes = []string{"r"}
	cfg := configs.Config{
		Release:   "x",
		DataDir:   t.TempDir(),
		Providers: []configs.Provider{{Name: "mock", BaseURL: "http://127.0.0.1:9/v1", Timeout: configs.Duration(3 * time.Second), Headers: map[string]string{"X-A": "b"}}},
		Keys:      []configs.Key{key},
		Routes: []configs.Route{{
			Name: "r", Match: []string{"r-*"}, Prompt: configs.Prompt{Version: "v1"},
			Flags:        map[string]any{"strict": false, "n": 0, "s": ""},
			Sticky:       "header:X-User",
			Targets:      []configs.Target{{Provider: "mock", Model: "a", Weight: intp(1)}, {Provider: "mock", Model: "b", Weight: intp(0), Cohort: "canary"}},
			Fallbacks:    []configs.Target{{Provider: "mock"}},
			Contract:     configs.Contract{Mode: configs.ModeEnforce},
			AutoRollback: true, MaxBodyBytes: 1 << 20,
		}},
	}
	plain, err := yaml.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	compact, err := MarshalConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	load := func(b []byte) *configs.Config {
		t.Helper()
		c, err := configs.Load(b, configs.Options{})
		if err != nil {
			t.Fatalf("Load = %v\n%s", err, b)
		}
		return c
	}
	a, b := load(plain), load(compact)
	if a.Revision != b.Revision {
		t.Errorf("compact config revision %s; plain %s\ncompact:\n%s", b.Revision, a.Revision, compact)
	}
	if d := configs.Diff(a.State(), b.State()); len(d) > 0 {
		t.Errorf("compact config differs in state: %+v", d)
	}
	if !strings.Contains(string(compact), "weight: 0") || !strings.Contains(string(compact), "strict: false") {
		t.Errorf("compact config lost weight 0 or a false flag:\n%s", compact)
	}

	big := ManyKeysRoutesConfig(cfg, 10000, 10000)
	out, err := MarshalConfig(&big)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > configs.MaxFileBytes {
		t.Errorf("10,000 keys and routes take %d bytes; want at most %d", len(out), configs.MaxFileBytes)
	}
	t.Logf("10,000 keys and routes: %d bytes", len(out))
}
