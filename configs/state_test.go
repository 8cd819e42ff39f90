package configs_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
)

const stateBase = `release: r1
providers:
  - {name: openai, base_url: 'https://api.openai.com/v1'}
  - {name: groq, base_url: 'https://api.groq.com/openai/v1'}
keys:
  - {name: checkout, key_sha256: ed011a24a1e3bd76899611c24c828e62014e47d901ad97a31f4448a83caac357, rpm: 600, tpm: 1000}
routes:
  - name: support-bot
    match: ['support-*']
    prompt: {version: v17, system: "You are a refund assistant."}
    flags: {strict_json: false, tone: calm, limits: {max: 3}}
    targets:
      - {provider: openai, model: gpt-4o-mini, weight: 80}
      - {provider: groq, model: llama, weight: 20, cohort: canary}
    fallbacks:
      - {provider: openai, model: gpt-4o-mini}
    contract: {mode: observe}
    auto_rollback: true
  - name: search
    targets:
      - {provider: openai}
`

func stateOf(t *testing.T, y string) configs.State {
	t.Helper()
	return mustLoad(t, y, configs.Options{}).State()
}

func TestState(t *testing.T) {
	c := mustLoad(t, stateBase, configs.Options{})
	s := c.State()
	if s.Revision != c.Revision || s.Release != "r1" || s.TakenAt.IsZero() || s.TakenAt.Location().String() != "UTC" {
		t.Errorf("State() header = %q %q %v", s.Revision, s.Release, s.TakenAt)
	}
	want := configs.RouteState{
		Name:   "support-bot",
		Match:  []string{"support-*"},
		Prompt: configs.Prompt{Version: "v17", System: "You are a refund assistant."},
		Flags:  map[string]any{"strict_json": false, "tone": "calm", "limits": map[string]any{"max": 3}},
		Sticky: "user",
		Targets: []configs.TargetState{
			{Provider: "openai", Model: "gpt-4o-mini", Cohort: "stable", Weight: 80, ConfiguredWeight: 80},
			{Provider: "groq", Model: "llama", Cohort: "canary", Weight: 20, ConfiguredWeight: 20},
		},
		Fallbacks:    []configs.TargetState{{Provider: "openai", Model: "gpt-4o-mini", Cohort: "stable"}},
		Contract:     configs.ContractState{Mode: "observe"},
		AutoRollback: true,
	}
	if got := s.Route("support-bot"); got == nil || !reflect.DeepEqual(*got, want) {
		t.Errorf("State().Route(support-bot) =\n%+v\nwant\n%+v", got, want)
	}
	if got := s.Route("search"); got == nil || len(got.Targets) != 1 || got.Targets[0].Weight != 1 || got.Targets[0].Model != "" {
		t.Errorf("State().Route(search) = %+v; want one passthrough target of weight 1", got)
	}
	if s.Route("nope") != nil {
		t.Errorf("State().Route(nope) != nil")
	}
	if want := []configs.KeyState{{Name: "checkout", RPM: 600, TPM: 1000}}; !reflect.DeepEqual(s.Keys, want) {
		t.Errorf("State().Keys = %+v; want %+v", s.Keys, want)
	}
	if got := s.Route("support-bot").Cohorts(); !reflect.DeepEqual(got, []string{"stable", "canary"}) {
		t.Errorf("Cohorts() = %v; want [stable canary]", got)
	}

	// The state is a copy: changing it leaves the config alone.
	r := s.Route("support-bot")
	r.Flags["tone"] = "angry"
	r.Match[0] = "x"
	r.Targets[1].Weight = 0
	if c.Routes[0].Flags["tone"] != "calm" || c.Routes[0].Match[0] != "support-*" || c.Routes[0].Targets[1].W() != 20 {
		t.Errorf("changing the state changed the config: %+v", c.Routes[0])
	}
	// A rolled-back cohort drops out of Cohorts.
	if got := r.Cohorts(); !reflect.DeepEqual(got, []string{"stable"}) {
		t.Errorf("Cohorts() after rollback = %v; want [stable]", got)
	}

	// The JSON names are part of the external interface.
	b, err := json.Marshal(c.State())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"config_revision":"rev_`, `"release":"r1"`, `"taken_at":`, `"routes":[`, `"keys":[`,
		`"configured_weight":80`, `"weight":20`, `"cohort":"canary"`, `"auto_rollback":true`, `"sticky":"user"`,
		`"prompt":{"version":"v17"`, `"contract":{"mode":"observe"}`, `"fallbacks":[`, `"match":["support-*"]`} {
		if !strings.Contains(string(b), name) {
			t.Errorf("State JSON lacks %s:\n%s", name, b)
		}
	}
	if strings.Contains(string(b), "ed011a24") {
		t.Errorf("State JSON holds a key digest:\n%s", b)
	}
}

func TestDiff(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(stateBase, old) {
			panic("BUG: test edit does not apply: " + old)
		}
		return strings.Replace(stateBase, old, new, 1)
	}
	canary := configs.TargetState{Provider: "groq", Model: "llama", Cohort: "canary", Weight: 20, ConfiguredWeight: 20}
	tests := []struct {
		name string
		b    string
		want []configs.Change // config_revision excluded; it changes with any of these
	}{
		{"no change", stateBase, nil},
		{"comment only", stateBase + "# reviewed\n", nil},
		{"prompt version", edit("version: v17", "version: v18"),
			[]configs.Change{{Path: "routes[support-bot].prompt.version", From: "v17", To: "v18"}}},
		{"prompt system", edit("You are a refund assistant.", "You are terse."),
			[]configs.Change{{Path: "routes[support-bot].prompt.system", From: "You are a refund assistant.", To: "You are terse."}}},
		{"flag change", edit("strict_json: false", "strict_json: true"),
			[]configs.Change{{Path: "routes[support-bot].flags.strict_json", From: false, To: true}}},
		{"flag added", edit("tone: calm", "tone: calm, beta: 2"),
			[]configs.Change{{Path: "routes[support-bot].flags.beta", From: nil, To: float64(2)}}},
		{"flag removed", edit("tone: calm, ", ""),
			[]configs.Change{{Path: "routes[support-bot].flags.tone", From: "calm", To: nil}}},
		{"nested flag", edit("max: 3", "max: 4"),
			[]configs.Change{{Path: "routes[support-bot].flags.limits", From: map[string]any{"max": float64(3)}, To: map[string]any{"max": float64(4)}}}},
		{"weight", edit("weight: 20", "weight: 5"),
			[]configs.Change{{Path: "routes[support-bot].targets[canary:groq/llama].weight", From: 20, To: 5}}},
		{"target added", edit("    fallbacks:", "      - {provider: groq, model: big, weight: 1, cohort: canary2}\n    fallbacks:"),
			[]configs.Change{{Path: "routes[support-bot].targets[canary2:groq/big]", From: nil,
				To: configs.TargetState{Provider: "groq", Model: "big", Cohort: "canary2", Weight: 1, ConfiguredWeight: 1}}}},
		{"target removed", edit("      - {provider: groq, model: llama, weight: 20, cohort: canary}\n", ""),
			[]configs.Change{{Path: "routes[support-bot].targets[canary:groq/llama]", From: canary, To: nil}}},
		{"sticky", edit("    targets:\n      - {provider: openai, model: gpt-4o-mini", "    sticky: key\n    targets:\n      - {provider: openai, model: gpt-4o-mini"),
			[]configs.Change{{Path: "routes[support-bot].sticky", From: "user", To: "key"}}},
		{"match", edit("match: ['support-*']", "match: ['support-*', 'help-*']"),
			[]configs.Change{{Path: "routes[support-bot].match", From: []string{"support-*"}, To: []string{"support-*", "help-*"}}}},
		{"auto_rollback", edit("auto_rollback: true", "auto_rollback: false"),
			[]configs.Change{{Path: "routes[support-bot].auto_rollback", From: true, To: false}}},
		{"contract", edit("contract: {mode: observe}", "contract: {mode: enforce}"),
			[]configs.Change{{Path: "routes[support-bot].contract", From: configs.ContractState{Mode: "observe"}, To: configs.ContractState{Mode: "enforce"}}}},
		{"fallbacks", edit("      - {provider: openai, model: gpt-4o-mini}\n    contract", "      - {provider: groq, model: llama}\n    contract"),
			[]configs.Change{{Path: "routes[support-bot].fallbacks",
				From: []configs.TargetState{{Provider: "openai", Model: "gpt-4o-mini", Cohort: "stable"}},
				To:   []configs.TargetState{{Provider: "groq", Model: "llama", Cohort: "stable"}}}}},
		{"route removed", edit("  - name: search\n    targets:\n      - {provider: openai}\n", ""),
			[]configs.Change{{Path: "routes[search]", From: "present", To: nil}}},
		{"route added", stateBase + "  - name: embed\n    targets: [{provider: openai}]\n",
			[]configs.Change{{Path: "routes[embed]", From: nil, To: "present"}}},
		{"key rpm", edit("rpm: 600", "rpm: 60"),
			[]configs.Change{{Path: "keys[checkout].rpm", From: 600, To: 60}}},
		{"key tpm", edit("tpm: 1000", "tpm: 2000"),
			[]configs.Change{{Path: "keys[checkout].tpm", From: 1000, To: 2000}}},
		{"key routes", edit("tpm: 1000}", "tpm: 1000, routes: [search]}"),
			[]configs.Change{{Path: "keys[checkout].routes", From: []string(nil), To: []string{"search"}}}},
		{"key fail_closed", edit("tpm: 1000}", "tpm: 1000, fail_closed: true}"),
			[]configs.Change{{Path: "keys[checkout].fail_closed", From: false, To: true}}},
		{"key added", edit("rpm: 600, tpm: 1000}", "rpm: 600, tpm: 1000}\n  - {name: batch, key_sha256: b1ad6faeb3697d93f457d63a5d86be8567af7894022540096a600cb876f2da9f, rpm: 5}"),
			[]configs.Change{{Path: "keys[batch]", From: nil, To: configs.KeyState{Name: "batch", RPM: 5}}}},
		{"key removed", edit("keys:\n  - {name: checkout, key_sha256: ed011a24a1e3bd76899611c24c828e62014e47d901ad97a31f4448a83caac357, rpm: 600, tpm: 1000}\n", ""),
			[]configs.Change{{Path: "keys[checkout]", From: configs.KeyState{Name: "checkout", RPM: 600, TPM: 1000}, To: nil}}},
		{"release", edit("release: r1", "release: r2"),
			[]configs.Change{{Path: "release", From: "r1", To: "r2"}}},
	}
	a := stateOf(t, stateBase)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stateOf(t, tt.b)
			got := Diff(a, b)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff(base, %s) =\n%#v\nwant\n%#v", tt.name, got, tt.want)
			}
			rev := configs.Diff(a, b)
			hasRev := containsPath(rev, "config_revision")
			if hasRev != (len(tt.want) > 0) {
				t.Errorf("Diff(base, %s) config_revision change = %v; want %v", tt.name, hasRev, len(tt.want) > 0)
			}
		})
	}
}

// Diff calls configs.Diff without the config_revision change, which comes
// with every other one.
func Diff(a, b configs.State) []configs.Change {
	var out []configs.Change
	for _, c := range configs.Diff(a, b) {
		if c.Path != "config_revision" {
			out = append(out, c)
		}
	}
	return out
}

func containsPath(cs []configs.Change, p string) bool {
	for _, c := range cs {
		if c.Path == p {
			return true
		}
	}
	return false
}

func TestDiffSameStateAndRoundTrip(t *testing.T) {
	s := stateOf(t, stateBase)
	if got := configs.Diff(s, s); len(got) != 0 {
		t.Errorf("Diff(s, s) = %v; want none", got)
	}
	// An incident snapshot is stored as JSON; comparing it with the live
	// state must not report differences that are only JSON vs YAML types.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back configs.State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := configs.Diff(back, s); len(got) != 0 {
		t.Errorf("Diff(from JSON, live) = %v; want none", got)
	}
	if got := configs.Diff(s, back); len(got) != 0 {
		t.Errorf("Diff(live, from JSON) = %v; want none", got)
	}

	// A rollback shows as a live weight change.
	rolled := stateOf(t, stateBase)
	rolled.Route("support-bot").Targets[1].Weight = 0
	rolled.Route("support-bot").RolledBack = []string{"canary"}
	want := []configs.Change{{Path: "routes[support-bot].targets[canary:groq/llama].weight", From: 20, To: 0}}
	if got := configs.Diff(s, rolled); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff(live, rolled back) = %#v; want %#v", got, want)
	}
	if got := configs.Diff(configs.State{}, configs.State{}); len(got) != 0 {
		t.Errorf("Diff(empty, empty) = %v; want none", got)
	}
}
