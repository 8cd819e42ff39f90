package main

// Issue 14.8 as a new user met it: ordinary chats without response_format
// sent to the quick-start route (configs/demo.yaml) break its JSON
// contract on every cohort. The real binary, the real config.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestQuickStartOrdinaryChatsIncidentText(t *testing.T) {
	m1, m2 := startMockProc(t, "qs1"), startMockProc(t, "qs2")
	raw, err := os.ReadFile(filepath.Join("..", "..", "configs", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	schema, _ := os.ReadFile(filepath.Join("..", "..", "configs", "schemas", "refund.json"))
	cfg := strings.NewReplacer(
		"127.0.0.1:18080", "%[1]s", "127.0.0.1:18081", "%[2]s", "./cairn-data", "%[3]s",
		"127.0.0.1:18090", m1, "127.0.0.1:18091", m2,
		"window: 10s", "window: 2s", // the quick start's route, detected faster
	).Replace(string(raw))
	g := startRelGateway(t, cfg, relPrep(func(dir string) {
		os.MkdirAll(filepath.Join(dir, "schemas"), 0o750)
		os.WriteFile(filepath.Join(dir, "schemas", "refund.json"), schema, 0o600)
	}))

	for i := range 60 {
		r := postChat(g.api, "demo-key-checkout", chatBody("support-bot", fmt.Sprintf(`"user":"u%d"`, i%20)))
		if r.err != nil || r.status != 200 {
			t.Fatalf("chat %d: %v %d %s", i, r.err, r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The clients go quiet; every incident must end without a claimed mitigation.
	var ids []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		ids = listIncidentIDs(t, g.admin)
		done := len(ids) > 0
		for _, id := range ids {
			done = done && getIncident(t, g.admin, id).Status == "resolved"
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incidents %v not resolved within 20 s of the traffic stopping", ids)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(ids) != 1 {
		t.Errorf("%d incidents for one cause; want 1 (the error rate crossed only through the contract failures)", len(ids))
	}
	bare := regexp.MustCompile(`(baseline was|stayed at) \d+(\.\d)?%|\(\d+(\.\d)?% [≥<] \d+(\.\d)?%\)`)
	for _, id := range ids {
		var inc struct {
			Status      string  `json:"status"`
			Resolution  string  `json:"resolution"`
			MitigatedAt *string `json:"mitigated_at"`
			Symptom     string  `json:"symptom"`
			Timeline    []struct {
				Kind, Message string
			} `json:"timeline"`
			Scope struct {
				Users int `json:"users"`
			} `json:"scope"`
		}
		json.Unmarshal(getIncidentRaw(t, g.admin, id), &inc)
		pm, _, code := runCairn(t, nil, "incidents", "postmortem", id, "--admin", g.admin)
		if code != 0 {
			t.Fatalf("postmortem %s: exit %d", id, code)
		}
		all := inc.Symptom + "\n" + pm
		for _, e := range inc.Timeline {
			all += "\n" + e.Message
			if e.Kind == "mitigation" {
				t.Errorf("%s: timeline claims a mitigation: %q", id, e.Message)
			}
		}
		if inc.Resolution != "no_traffic" || inc.MitigatedAt != nil {
			t.Errorf("%s: resolution %q, mitigated_at %v; want no_traffic and never mitigated", id, inc.Resolution, inc.MitigatedAt)
		}
		if m := bare.FindAllString(all, -1); len(m) > 0 {
			t.Errorf("%s prints percentages without saying what they count: %q", id, m)
		}
		for _, want := range []string{"asked for no JSON (no response_format)", "is not specific to cohort", "resolved without mitigation"} {
			if !strings.Contains(all, want) {
				t.Errorf("%s lacks %q", id, want)
			}
		}
		if inc.Scope.Users == 0 || inc.Scope.Users > 20 {
			t.Errorf("%s: scope counts %d users; want between 1 and the 20 that sent", id, inc.Scope.Users)
		}
		list, _, _ := runCairn(t, nil, "incidents", "list", "--admin", g.admin)
		if !strings.Contains(list, "resolved (no traffic, not mitigated)") {
			t.Errorf("incidents list does not say how it ended:\n%s", list)
		}
	}
}
