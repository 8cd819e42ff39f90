package configs_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// The capture durability fields have defaults (flush interval ≤ 100 ms)
// and refuse nonsense naming the field.
func TestCaptureDurabilityFields(t *testing.T) {
	c := mustLoad(t, okBase, configs.Options{})
	cp := c.Capture
	if cp.FlushInterval.D() != 100*time.Millisecond || cp.Fsync != configs.FsyncOff || cp.SpillBytes != 64<<20 ||
		cp.RedisBacklog != 100000 || cp.ReserveBytes != 1<<20 {
		t.Errorf("capture defaults = %+v", cp)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"capture: { flush_interval: -1s }\n", "capture.flush_interval: -1s is not between 0 and 10s"},
		{"capture: { flush_interval: 1m }\n", "capture.flush_interval: 1m0s is not between 0 and 10s"},
		{"capture: { fsync: sometimes }\n", `capture.fsync: "sometimes" is not one of off, flush, rotate`},
		{"capture: { spill_bytes: -5 }\n", "capture.spill_bytes: must not be negative"},
		{"capture: { redis_backlog: -1 }\n", "capture.redis_backlog"},
		{"capture: { reserve_bytes: -2 }\n", "capture.reserve_bytes"},
	} {
		_, err := load(t, okBase+tt.yaml, configs.Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q) = %v; want %q", tt.yaml, err, tt.want)
		}
	}
	c = mustLoad(t, okBase+"capture: { flush_interval: 20ms, fsync: flush, reserve_bytes: -1 }\n", configs.Options{})
	if c.Capture.FlushInterval.D() != 20*time.Millisecond || c.Capture.Fsync != configs.FsyncFlush || c.Capture.ReserveBytes != -1 {
		t.Errorf("capture = %+v", c.Capture)
	}
}

// DiffConfig names provider fields, hides secrets and leaves routes and
// keys to the state diff.
func TestDiffConfig(t *testing.T) {
	e := env(map[string]string{"K": "sk-first-secret-value-000"})
	a := mustLoad(t, "providers: [{name: openai, base_url: 'https://api.openai.com/v1', api_key_env: K, timeout: 30s}]\n"+okRoutes+
		"redis_url: 'redis://:pw1@127.0.0.1:6379'\n", configs.Options{LookupEnv: e})
	e2 := env(map[string]string{"K": "sk-second-secret-value-00"})
	b := mustLoad(t, "providers: [{name: openai, base_url: 'https://eu.api.openai.com/v1', api_key_env: K, timeout: 45s}]\n"+
		"routes: [{name: r, prompt: {version: v2}, targets: [{provider: openai}]}]\n"+
		"redis_url: 'redis://:pw2@127.0.0.1:6379'\n", configs.Options{LookupEnv: e2})
	got := map[string]string{}
	for _, c := range configs.DiffConfig(a, b) {
		got[c.Path] = strings.TrimSpace(strings.Join([]string{toS(c.From), toS(c.To)}, " -> "))
	}
	want := map[string]string{
		"providers[openai].base_url": "https://api.openai.com/v1 -> https://eu.api.openai.com/v1",
		"providers[openai].timeout":  "30s -> 45s",
		"providers[openai].api_key":  "changed -> changed",
		"redis_url.password":         "changed -> changed",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("DiffConfig %s = %q; want %q", p, got[p], w)
		}
	}
	for p, v := range got {
		if strings.Contains(v, "secret-value") || strings.Contains(v, "pw1") || strings.Contains(v, "pw2") {
			t.Errorf("DiffConfig %s shows a secret: %s", p, v)
		}
		if strings.HasPrefix(p, "routes[") {
			t.Errorf("DiffConfig reports %s, which the state diff covers", p)
		}
	}
}

func toS(v any) string {
	if v == nil {
		return "<nil>"
	}
	if s, ok := v.(string); ok {
		return s
	}
	return strings.TrimSpace(strings.ReplaceAll(fmtAny(v), "\n", " "))
}

func fmtAny(v any) string { return fmt.Sprint(v) }
