package main

// What a new user hits with the investigator's CLI (issue 14.10): output
// that pipes into jq, a mistyped --data-dir, and mock providers that start
// as they say.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// declareIncident opens an incident by hand on a running gateway and
// returns its ID.
func declareIncident(t *testing.T, admin, route string) string {
	t.Helper()
	r, err := http.Post(admin+"/admin/incidents", "application/json",
		strings.NewReader(`{"route":"`+route+`","reason":"cli test"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	var inc struct {
		ID string `json:"id"`
	}
	if r.StatusCode >= 300 || json.Unmarshal(b, &inc) != nil || inc.ID == "" {
		t.Fatalf("declare incident: %s %s", r.Status, b)
	}
	return inc.ID
}

func TestCLIIncidentsShowIsJSON(t *testing.T) {
	e := startE2E(t)
	id := declareIncident(t, e.admin, "support-bot")
	for _, src := range [][]string{{"--data-dir", e.dataDir}, {"--admin", e.admin}} {
		cmd := exec.Command(cairnBin, append([]string{"incidents", "show", id}, src...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("incidents show %s: %v\n%s", src[0], err, stderr.String())
		}
		var doc map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
			t.Errorf("incidents show %s: stdout is not one JSON document (what jq reads): %v\n%s", src[0], err, stdout.String())
		} else if doc["id"] != id {
			t.Errorf("incidents show %s: id = %v; want %s", src[0], doc["id"], id)
		}
		if !strings.Contains(stderr.String(), "frozen hash verified: sha256:") {
			t.Errorf("incidents show %s: stderr lacks the verification note: %q", src[0], stderr.String())
		}
	}
}

func TestCLIMissingDataDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	for _, args := range [][]string{
		{"incidents", "list", "--data-dir", missing},
		{"incidents", "show", "inc_x", "--data-dir", missing},
		{"requests", "show", "req_x", "--data-dir", missing},
	} {
		cmd := exec.Command(cairnBin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "no such file or directory") {
			t.Errorf("cairn %s: exit %d, stdout %q, stderr %q; want exit 1, no table, an error naming the missing directory",
				strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}

// startMockCLI runs `cairn mock-provider` and returns the first line it
// printed (or "" when it printed none within 10 s).
func startMockCLI(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(cairnBin, append([]string{"mock-provider"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait() // after the pipe is drained, as StderrPipe requires
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	select {
	case l := <-lines:
		return l
	case <-time.After(startupWait):
		return ""
	}
}

// mockListening is the mock's first line, naming the address it bound.
var mockListening = regexp.MustCompile(`listening on http://(127\.0\.0\.1:[1-9][0-9]*)/v1`)

func TestCLIMockProviderListening(t *testing.T) {
	// Port 0: the line must name the port the kernel chose.
	line := startMockCLI(t, "--listen", anyPort)
	m := mockListening.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("first line = %q; want it to say it is listening on 127.0.0.1:PORT", line)
	}
	addr := m[1]
	// The line comes after the bind: the port answers at once.
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("printed %q but %s refuses connections: %v", line, addr, err)
	}
	c.Close()

	// A port clash is an error, not a "listening" line.
	clash := exec.Command(cairnBin, "mock-provider", "--listen", addr)
	out, err := clash.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || strings.Contains(string(out), "listening") || !strings.Contains(string(out), "address already in use") {
		t.Errorf("second mock on %s: %v, output %q; want exit 1 naming the clash and no listening line", addr, err, out)
	}

	// Two mocks with the default prefix hand out distinct provider IDs.
	m = mockListening.FindStringSubmatch(startMockCLI(t, "--listen", anyPort))
	if m == nil {
		t.Fatal("the second mock printed no listening line")
	}
	addr2 := m[1]
	ids := map[string]string{}
	for _, a := range []string{addr, addr2} {
		r, err := http.Post("http://"+a+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		id := r.Header.Get("x-request-id")
		if !strings.HasPrefix(id, "mock-") {
			t.Errorf("mock %s request ID %q lacks the mock- prefix", a, id)
		}
		if other, dup := ids[id]; dup {
			t.Errorf("mocks %s and %s both handed out request ID %q", other, a, id)
		}
		ids[id] = a
	}
}

func TestCLICheckAllErrorsAndWarnings(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte(`providers: [{name: p, base_url: "http://127.0.0.1:1/v1"}]
routes:
  - name: r
    targets:
      - { provider: p, weight: 80 }
      - { provider: q, wieght: 20, cohort: canary }
`), 0o600)
	out, err := exec.Command(cairnBin, "check", "--config", typo).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("check typo: %v; want exit 1", err)
	}
	for _, want := range []string{
		`routes[0].targets[1].wieght: unknown field (did you mean "weight"?) at line 6`,
		`routes[0].targets[1].provider: unknown provider "q"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check typo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "configs.") {
		t.Errorf("check typo output names a Go type:\n%s", out)
	}

	warn := filepath.Join(dir, "warn.yaml")
	os.WriteFile(warn, []byte(`providers: [{name: p, base_url: "http://127.0.0.1:1"}]
routes:
  - { name: all, match: ["*"], targets: [{provider: p}] }
  - { name: mini, match: ["gpt-4o-mini*"], targets: [{provider: p}] }
`), 0o600)
	cmd := exec.Command(cairnBin, "check", "--config", warn)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("check warn: %v; warnings must not fail the check", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ok: ") {
		t.Fatalf("check warn printed %q; want the ok line and 4 warnings", lines)
	}
	for i, want := range []string{`warning: routes[0].match[0]: "*" catches every model name`,
		`warning: routes[1].match[0]: "gpt-4o-mini*" is never used`,
		`warning: routes[1]: every match glob of route "mini" is shadowed`,
		`warning: providers[0].base_url: "http://127.0.0.1:1" has no version prefix`} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d = %q; want it to start %q", i+1, lines[i+1], want)
		}
	}
}
