package main

// Issue 14.7: an incident says how many end users it affected. The gateway
// records a keyed hash of the OpenAI user / safety_identifier (never the
// value) and the incident's scope and postmortem count distinct users.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const usersConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
providers:
  - { name: p, base_url: "http://%[4]s/v1", timeout: 5s }
routes:
  - { name: chat, targets: [ { provider: p, model: m } ] }
detection: { window: 30s, min_requests: 5 }
`

func TestUsersAffected(t *testing.T) {
	mock := startMockProc(t, "users")
	setFault(t, mock, `{"model":"*","fault":{"status":503}}`)
	g := startRelGateway(t, fmt.Sprintf(usersConfig, "%[1]s", "%[2]s", "%[3]s", mock))

	const users, perUser, anonymous = 7, 3, 4
	var ids []string
	for i := range users * perUser {
		field := "user"
		if i%2 == 1 {
			field = "safety_identifier" // the newer name of the same thing
		}
		r := postChat(g.api, "", chatBody("chat", fmt.Sprintf(`%q:"acct-zq81-%d"`, field, i%users)))
		if r.status != 503 { // the upstream's own status, relayed (issue 14.3)
			t.Fatalf("request %d: %d %v; want 503 relayed from the failing upstream", i, r.status, r.err)
		}
		ids = append(ids, r.id)
	}
	for range anonymous {
		postChat(g.api, "", chatBody("chat", ""))
	}

	var inc struct {
		ID    string `json:"id"`
		Scope struct {
			Failed            int64    `json:"failed"`
			Users             int64    `json:"users"`
			UsersAtMost       bool     `json:"users_at_most"`
			FailedWithoutUser int64    `json:"failed_without_user"`
			UserHashes        []string `json:"user_hashes"`
		} `json:"scope"`
	}
	total := int64(users*perUser + anonymous)
	deadline := time.Now().Add(startupWait)
	for time.Now().Before(deadline) {
		if list := listIncidentIDs(t, g.admin); len(list) == 1 {
			b := getIncidentRaw(t, g.admin, list[0])
			if err := json.Unmarshal(b, &inc); err != nil {
				t.Fatal(err)
			}
			if inc.Scope.Failed == total {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if inc.Scope.Failed != total || inc.Scope.Users != users || inc.Scope.UsersAtMost || inc.Scope.FailedWithoutUser != anonymous || len(inc.Scope.UserHashes) != users {
		t.Fatalf("scope = %+v; want %d failed from %d users (exact), %d without a user", inc.Scope, total, users, anonymous)
	}
	pm, _, _ := runCairn(t, nil, "incidents", "postmortem", inc.ID, "--admin", g.admin)
	if !strings.Contains(pm, fmt.Sprintf("End users affected: %d users", users)) || !strings.Contains(pm, fmt.Sprintf("%d of the failed requests named no user", anonymous)) {
		t.Errorf("postmortem does not count the users:\n%s", pm)
	}

	// The same user has the same hash; the record never holds the value.
	hashOf := map[string]string{}
	for i, id := range ids[:users+1] {
		out, stderr, code := runCairn(t, nil, "requests", "show", id, "--admin", g.admin)
		if code != 0 {
			t.Fatalf("requests show %s: %s", id, stderr)
		}
		var rec struct {
			UserHash string `json:"user_hash"`
		}
		json.Unmarshal([]byte(out), &rec)
		if !strings.HasPrefix(rec.UserHash, "uh_") {
			t.Errorf("record %s user_hash = %q", id, rec.UserHash)
		}
		hashOf[fmt.Sprint(i%users)] += rec.UserHash + " "
	}
	if f := strings.Fields(hashOf["0"]); len(f) != 2 || f[0] != f[1] {
		t.Errorf("user acct-zq81-0 (sent as user, then as safety_identifier) got hashes %q; want one", f)
	}
	// "Was acct-zq81-3 affected?": its hash is in the incident's list;
	// a user who sent nothing is not.
	for user, want := range map[string]bool{"acct-zq81-3": true, "acct-someone-else": false} {
		out, stderr, code := runCairn(t, nil, "users", "hash", user, "--data-dir", g.dataDir)
		h := strings.TrimSpace(out)
		if code != 0 || !strings.HasPrefix(h, "uh_") {
			t.Fatalf("users hash %s: exit %d %q %s", user, code, out, stderr)
		}
		if got := slices.Contains(inc.Scope.UserHashes, h); got != want {
			t.Errorf("users hash %s = %s: in the incident's user_hashes = %v; want %v", user, h, got, want)
		}
	}
	// Flush the capture files, then look for the raw values everywhere.
	g.gw.cmd.Process.Signal(os.Interrupt)
	g.gw.wait()
	records := 0
	filepath.WalkDir(g.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		records += bytes.Count(b, []byte(`"user_hash":"uh_`))
		if bytes.Contains(b, []byte("acct-zq81")) {
			t.Errorf("%s holds a raw user value", p)
		}
		return nil
	})
	if records < users*perUser {
		t.Errorf("data_dir holds %d records with a user hash; want at least %d", records, users*perUser)
	}
	if strings.Contains(g.gw.out.String(), "acct-zq81") {
		t.Errorf("the gateway's log holds a raw user value")
	}
}

func getIncidentRaw(t *testing.T, admin, id string) []byte {
	t.Helper()
	r, err := http.Get(admin + "/admin/incidents/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("incident %s: %d %v", id, r.StatusCode, err)
	}
	return b
}
