package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/loadtest"
	"github.com/cairnhq/cairn/proxy"
)

// demoApps are the simulated applications: key name, plaintext demo key
// (configs/demo.yaml holds only their SHA-256), requests per second.
var demoApps = []struct {
	name, key string
	rps       int
}{
	{"checkout", "demo-key-checkout", 40},
	{"search", "demo-key-search", 25},
	{"batch", "demo-key-batch", 15},
}

// cmdDemo runs the whole story on loopback with no keys, network or
// services: mock providers, the gateway from configs/demo.yaml, traffic from
// three apps, a prompt change, a breaking canary, the incident, the
// automatic rollback and the postmortem draft.
func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data directory (default: a fresh temporary directory)")
	keep := fs.Bool("serve", false, "keep the gateway and mocks running afterwards, until Ctrl-C")
	redisURL := fs.String("redis", "", "use this Redis (redis://…) for limits, capture and incidents")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	d := &demo{out: stdout, start: time.Now()}
	return d.run(*dataDir, *redisURL, *keep, stderr)
}

type demo struct {
	out   io.Writer
	start time.Time

	api, admin string
	client     *http.Client

	sent, failed, canary atomic.Int64
	firstBad             atomic.Int64 // unix nanos of the first contract failure seen by a client
	afterRollbackFailed  atomic.Int64
	rolledBack           atomic.Bool
	badID                atomic.Pointer[string] // x-request-id of the first broken response a client saw

	faq demoFAQ // the second story (demo_prompt.go)
}

func (d *demo) say(format string, a ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, a...))
}

func (d *demo) run(dataDir, redisURL string, keep bool, stderr io.Writer) error {
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "cairn-demo-")
		if err != nil {
			return err
		}
		dataDir = dir
	}
	dataDir, _ = filepath.Abs(dataDir)
	fmt.Fprintf(d.out, "cairn demo: everything runs on loopback; data in %s\n", dataDir)

	// 1. Mock providers.
	primary := loadtest.NewMock(loadtest.MockOptions{RequestIDPrefix: "primary", Latency: 15 * time.Millisecond})
	canaryMock := loadtest.NewMock(loadtest.MockOptions{RequestIDPrefix: "canary", Latency: 15 * time.Millisecond})
	pAddr, err := primary.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer primary.Close()
	cAddr, err := canaryMock.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer canaryMock.Close()
	d.say("mock providers up: mock-primary http://%s/v1, mock-canary http://%s/v1", pAddr, cAddr)

	// 2. The gateway from the bundled demo config, on free ports.
	cfgPath, err := writeDemoConfig(dataDir, pAddr, cAddr, redisURL, "v17", false)
	if err != nil {
		return err
	}
	cfg, err := configs.LoadFile(cfgPath)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// The gateway's log goes to a file: its lines would interrupt the
	// narration, and nothing in it is lost (issue 14.11).
	logPath := filepath.Join(dataDir, "gateway.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, nil))
	g, err := proxy.New(proxy.Options{Config: cfg, Logger: log})
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(api, admin) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
		<-served
	}()
	d.api, d.admin = "http://"+api.Addr().String(), "http://"+admin.Addr().String()
	d.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	if err := d.waitReady(); err != nil {
		return err
	}
	d.say("gateway up: API %s/v1, admin %s (config %s, release %s; log in %s)", d.api, d.admin, cfg.Revision, cfg.Release, logPath)

	// 3. Traffic from three apps.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	total := 0
	for _, app := range demoApps {
		total += app.rps
		wg.Add(1)
		go func() { defer wg.Done(); d.traffic(ctx, app.name, app.key, app.rps) }()
	}
	primary.SetFault(loadtest.SystemFaultPrefix+"Prompt v18", loadtest.Fault{BrokenJSON: true}) // only faq-bot's v18 says so
	d.faq.start(d)
	defer d.faq.stop()
	d.say("traffic: apps checkout, search and batch send %d req/s to support-bot (80%% stable, 20%% canary by user)", total)
	time.Sleep(2500 * time.Millisecond)
	d.say("healthy: %d requests, %d failed, %d served by the canary", d.sent.Load(), d.failed.Load(), d.canary.Load())

	// 4. A prompt-version change, as a deploy would make it.
	if _, err := writeDemoConfig(dataDir, pAddr, cAddr, redisURL, "v18", false); err != nil {
		stop()
		return err
	}
	var rel struct {
		Revision string `json:"config_revision"`
	}
	if err := d.post("/admin/reload", nil, &rel); err != nil {
		stop()
		return fmt.Errorf("reload: %w", err)
	}
	d.say("change: support-bot prompt v17 -> v18 by config reload (now %s; recorded in the audit log)", rel.Revision)
	time.Sleep(1500 * time.Millisecond)

	// 5. The canary model starts wrapping its JSON in prose.
	canaryMock.SetFault("*", loadtest.Fault{BrokenJSON: true})
	faultAt := time.Now()
	sentAtFault, failedAtFault := d.sent.Load(), d.failed.Load()
	d.say("fault: the canary model gpt-4.1-mini now answers with text around its JSON (HTTP still 200)")

	// 6. Wait for the incident and the rollback.
	incID, err := d.waitIncident(12 * time.Second)
	if err != nil {
		stop()
		wg.Wait()
		return err
	}
	rolledAt, err := d.waitRollback(5 * time.Second)
	if err != nil {
		stop()
		wg.Wait()
		return err
	}
	d.rolledBack.Store(true)
	first := time.Unix(0, d.firstBad.Load())
	if d.firstBad.Load() == 0 {
		first = faultAt
	}
	inc, _ := d.incident(incID)
	d.say("incident %s opened: %s", incID, inc.Symptom)
	d.say("rollback: canary weight 20 -> 0, %.0f ms after the first bad response",
		float64(rolledAt.Sub(first).Microseconds())/1000)
	_ = sentAtFault
	sentAtRollback := d.sent.Load()
	time.Sleep(2500 * time.Millisecond)
	stop()
	wg.Wait()
	// Counted once every request has finished, so the two figures agree:
	// the window that opened the incident holds only the responses the
	// detector had seen when it fired; the others were in flight or
	// arrived before the rollback took effect.
	broken := d.failed.Load() - failedAtFault - d.afterRollbackFailed.Load()
	if extra := broken - inc.Trigger.Failed; extra > 0 {
		d.say("before the rollback clients got %d broken responses: the %d counted in the window that opened the incident, and %d more that were in flight or arrived while it opened and rolled back",
			broken, inc.Trigger.Failed, extra)
	} else {
		d.say("before the rollback clients got %d broken responses, all counted in the window that opened the incident", broken)
	}
	after := d.sent.Load() - sentAtRollback
	d.say("after the rollback: %d requests, %d failed", after, d.afterRollbackFailed.Load())

	// 7. The second story: a prompt at 100% breaks; Cairn reverts it.
	faqID, err := d.promptStory(dataDir, pAddr, cAddr, redisURL)
	if err != nil {
		return err
	}

	// 8. Hand over the evidence.
	pmPath := filepath.Join(dataDir, "incidents", incID+".postmortem.md")
	if pm, err := d.get("/admin/incidents/" + incID + "/postmortem"); err == nil {
		_ = os.WriteFile(pmPath, pm, 0o640)
	}
	exe, _ := os.Executable()
	_, statErr := os.Stat(filepath.Join("cmd", "cairn", "main.go"))
	bin := demoBinary(exe, statErr == nil)
	reqID := "<x-request-id>"
	if p := d.badID.Load(); p != nil {
		reqID = *p
	}
	fmt.Fprintf(d.out, "\nincident: %s (%s, layer %s)\n", incID, inc.Status, inc.Layer)
	fmt.Fprintf(d.out, "postmortem draft: %s\n", pmPath)
	fmt.Fprintf(d.out, "explore it:\n")
	if bin == "cairn" {
		fmt.Fprintf(d.out, "  (build the binary first: go build -o cairn ./cmd/cairn, and run it as ./cairn)\n")
	}
	fmt.Fprintf(d.out, "  %s incidents list --data-dir %s\n", bin, dataDir)
	fmt.Fprintf(d.out, "  %s incidents show %s --data-dir %s\n", bin, incID, dataDir)
	fmt.Fprintf(d.out, "  %s incidents postmortem %s --data-dir %s\n", bin, incID, dataDir)
	fmt.Fprintf(d.out, "  %s requests show %s --data-dir %s   # the first broken response a client saw, by its x-request-id\n", bin, reqID, dataDir)
	fmt.Fprintf(d.out, "  %s incidents postmortem %s --data-dir %s   # the prompt revert, with the diff of the system text\n", bin, faqID, dataDir)
	if keep {
		fmt.Fprintf(d.out, "  %s incidents samples %s --data-dir %s > fixtures.jsonl\n", bin, incID, dataDir)
		fmt.Fprintf(d.out, "  %s replay fixtures.jsonl --route support-bot --config %s --target mock-canary/gpt-4.1-mini   # fails while the canary is broken\n", bin, cfgPath)
		fmt.Fprintf(d.out, "  open %s/ui/#/incidents/%s   # the console: chart, samples, rollback\n", d.admin, incID)
		fmt.Fprintf(d.out, "  curl -s %s/admin/incidents/%s\n  curl -s %s/admin/state\n", d.admin, incID, d.admin)
		fmt.Fprintf(d.out, "  %s routes list --admin %s\n  %s routes prompts faq-bot --admin %s\n", bin, d.admin, bin, d.admin)
		fmt.Fprintf(d.out, "gateway %s/v1 and admin %s stay up; Ctrl-C to stop\n", d.api, d.admin)
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		<-sigs
	}
	if d.afterRollbackFailed.Load() > 0 {
		return fmt.Errorf("%d requests failed after the rollback", d.afterRollbackFailed.Load())
	}
	if n := d.faq.afterRevertFailed.Load(); n > 0 {
		return fmt.Errorf("%d faq-bot requests failed after the prompt revert", n)
	}
	return nil
}

// demoBinary is how the "explore it" lines call cairn: the binary that
// runs the demo, or under `go run` (a temporary binary that is gone when
// the demo exits) `go run ./cmd/cairn` from a checkout, else "cairn" with
// a line saying to build it.
func demoBinary(exe string, inCheckout bool) string {
	switch {
	case exe != "" && !strings.Contains(exe, "go-build"):
		return exe
	case inCheckout:
		return "go run ./cmd/cairn"
	}
	return "cairn"
}

// writeDemoConfig writes the bundled demo config with the mocks' addresses,
// free listen ports kept as 127.0.0.1:0, the data dir and prompt version.
func writeDemoConfig(dataDir, primary, canary, redisURL, prompt string, faqV18 bool) (string, error) {
	raw, err := configs.Examples.ReadFile("demo.yaml")
	if err != nil {
		return "", err
	}
	schema, err := configs.Examples.ReadFile("schemas/refund.json")
	if err != nil {
		return "", err
	}
	s := string(raw)
	s = strings.ReplaceAll(s, "127.0.0.1:18090", primary)
	s = strings.ReplaceAll(s, "127.0.0.1:18091", canary)
	s = strings.ReplaceAll(s, "127.0.0.1:18080", "127.0.0.1:0")
	s = strings.ReplaceAll(s, "127.0.0.1:18081", "127.0.0.1:0")
	s = strings.ReplaceAll(s, "data_dir: ./cairn-data", "data_dir: "+filepath.Join(dataDir))
	s = strings.Replace(s, "version: v17\n", "version: "+prompt+"\n", 1) // support-bot's
	if faqV18 {
		s = strings.Replace(s, faqPromptV17, faqPromptV18, 1)
	}
	if redisURL != "" {
		s += "\nredis_url: " + redisURL + "\n"
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "schemas"), 0o750); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dataDir, "schemas", "refund.json"), schema, 0o640); err != nil {
		return "", err
	}
	p := filepath.Join(dataDir, "demo.yaml")
	return p, os.WriteFile(p, []byte(s), 0o640)
}

func (d *demo) traffic(ctx context.Context, app, key string, rps int) {
	paced(ctx, rps, 32, func() { d.one(app, key) })
}

func (d *demo) one(app, key string) {
	user := fmt.Sprintf("%s-user-%d", app, rand.IntN(500))
	body := fmt.Sprintf(`{"model":"support-bot","user":%q,"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Customer %s asks: where is my refund for order %d? Reach me at %s@example.com"}]}`,
		user, user, rand.IntN(99999), user)
	req, _ := http.NewRequest(http.MethodPost, d.api+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Client-Name", app)
	sentAfterRollback := d.rolledBack.Load()
	resp, err := d.client.Do(req)
	d.sent.Add(1)
	if err != nil {
		d.failed.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	bad := resp.StatusCode != 200 || resp.Header.Get("x-cairn-contract") == "fail"
	if resp.Header.Get("x-cairn-cohort") == "canary" {
		d.canary.Add(1)
	}
	if bad {
		d.failed.Add(1)
		d.firstBad.CompareAndSwap(0, time.Now().UnixNano())
		if id := resp.Header.Get("x-request-id"); id != "" && d.badID.Load() == nil {
			d.badID.CompareAndSwap(nil, &id)
		}
		if sentAfterRollback {
			d.afterRollbackFailed.Add(1)
		}
	}
}

func (d *demo) waitReady() error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := d.get("/readyz"); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("gateway did not become ready")
}

type demoIncident struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Symptom string `json:"symptom"`
	Layer   string `json:"layer"`
	Trigger struct {
		Failed int64 `json:"failed"`
	} `json:"trigger"`
}

func (d *demo) waitIncident(limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		b, err := d.get("/admin/incidents")
		if err == nil {
			var list []demoIncident
			if json.Unmarshal(b, &list) == nil && len(list) > 0 {
				return list[0].ID, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("no incident opened within %s", limit)
}

func (d *demo) waitRollback(limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		b, err := d.get("/admin/state")
		if err == nil {
			var st configs.State
			if json.Unmarshal(b, &st) == nil {
				if r := st.Route("support-bot"); r != nil {
					for _, t := range r.Targets {
						if t.Cohort == "canary" && t.Weight == 0 {
							return time.Now(), nil
						}
					}
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("the canary was not rolled back within %s", limit)
}

func (d *demo) incident(id string) (demoIncident, error) {
	var inc demoIncident
	b, err := d.get("/admin/incidents/" + id)
	if err != nil {
		return inc, err
	}
	return inc, json.Unmarshal(b, &inc)
}

func (d *demo) get(path string) ([]byte, error) {
	resp, err := d.client.Get(d.admin + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, nil
}

func (d *demo) post(path string, body any, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	resp, err := d.client.Post(d.admin+path, "application/json", r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
