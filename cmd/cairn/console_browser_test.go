package main

// Issue 18: the investigator console in a real headless Chromium (Debian's
// chromium package; scripts/test installs it when missing) driven by
// chromedp, against the real cairn binary after a drill: a canary starts
// answering broken JSON, an incident opens, and the investigator works it
// from the browser.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

const consoleToken = "console-admin-token-7f3a9c"

const consoleConfig = `
listen: %s
admin_listen: %s
admin_token_env: CONSOLE_ADMIN_TOKEN
data_dir: %s
release: "console-e2e"
providers:
  - { name: primary, base_url: "http://%s/v1", timeout: 3s }
  - { name: canary, base_url: "http://%s/v1", timeout: 3s }
routes:
  - name: support-bot
    sticky: user
    prompt: { version: %s, system: "You are a refund assistant." }
    targets:
      - { provider: primary, model: gpt-4o-mini, weight: 80 }
      - { provider: canary, model: gpt-4.1-mini, weight: 20, cohort: canary }
    contract: { mode: observe }
    auto_rollback: false
detection: { window: 5s, min_requests: 8, contract_failure_rate: 0.2 }
`

// chromiumPath returns the browser to drive, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CAIRN_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Skip("no chromium: scripts/test installs Debian's chromium package")
	return ""
}

// consoleStack is a gateway with an admin token that has been through a
// drill: healthy traffic, a prompt change by reload, then a canary that
// breaks its JSON until an incident opens (no automatic rollback: the
// investigator rolls back from the console).
type consoleStack struct {
	api, admin, dataDir string
	incident            string
}

func startConsoleStack(t *testing.T) *consoleStack {
	t.Helper()
	dir := t.TempDir()
	primary, canary := startMockProc(t, "prim"), startMockProc(t, "cana")
	s := &consoleStack{dataDir: filepath.Join(dir, "data")}
	cfgPath := filepath.Join(dir, "cairn.yaml")
	cfg := func(prompt string) string {
		return fmt.Sprintf(consoleConfig, anyPort, anyPort, filepath.Join(dir, "data"), primary, canary, prompt)
	}
	g := serveConfig(t, cfgPath, cfg("v17"), "CONSOLE_ADMIN_TOKEN="+consoleToken)
	s.api, s.admin = g.api, g.admin

	send := func(n, from int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				body := fmt.Sprintf(`{"model":"support-bot","user":"user-%d","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"refund order %d"}]}`, from+i, from+i)
				r, err := http.Post(s.api+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err == nil {
					io.Copy(io.Discard, r.Body)
					r.Body.Close()
				}
			}(i)
		}
		wg.Wait()
	}
	send(60, 0)
	// A change just before the failure: the prompt version, by reload.
	if err := os.WriteFile(cfgPath, []byte(cfg("v18")), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, b := s.call(t, "POST", "/admin/reload", "", consoleToken); code != 200 {
		t.Fatalf("reload: %d %s", code, b)
	}
	setFault(t, canary, `{"model":"*","fault":{"broken_json":true}}`)
	deadline := time.Now().Add(startupWait)
	for n := 1000; s.incident == "" && time.Now().Before(deadline); n += 40 {
		send(40, n)
		_, b := s.call(t, "GET", "/admin/incidents", "", consoleToken)
		var list []struct{ ID, Signal string }
		json.Unmarshal(b, &list)
		for _, x := range list {
			if x.Signal == "contract_failure_rate" {
				s.incident = x.ID
			}
		}
	}
	if s.incident == "" {
		t.Fatal("no contract_failure_rate incident opened")
	}
	// Traffic goes on while the investigator works (a failing cohort that
	// went quiet would resolve the incident as no_traffic).
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := 5000; ctx.Err() == nil; n += 2 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				send(2, n)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func (s *consoleStack) call(t *testing.T, method, path, body, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.admin+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, b
}

// browser is one Chromium tab with what the page did recorded.
type browser struct {
	ctx    context.Context
	origin string
	mu     sync.Mutex
	// offOrigin are requests the page made anywhere but the admin origin.
	offOrigin []string
	// apiStatus are the statuses of the page's calls to the admin API.
	apiStatus map[string][]int
	// errors are console errors, uncaught exceptions and error log entries,
	// except failed loads (logged by the browser for a 401).
	errors     []string
	failedLoad []string
}

func newBrowser(t *testing.T, origin string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	b := &browser{ctx: ctx, origin: origin, apiStatus: map[string][]int{}}
	if err := chromedp.Do(ctx); err != nil { // start the browser, with no timeout
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, b.event); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) event(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		u := ev.Request.URL
		if !strings.HasPrefix(u, b.origin+"/") && u != b.origin {
			b.offOrigin = append(b.offOrigin, u)
		}
	case *network.EventResponseReceived:
		if u, err := url.Parse(ev.Response.URL); err == nil && strings.HasPrefix(u.Path, "/admin/") {
			b.apiStatus[u.Path] = append(b.apiStatus[u.Path], int(ev.Response.Status))
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.errors = append(b.errors, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.errors = append(b.errors, "exception: "+msg)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			if ev.Entry.Source == log.EntrySourceNetwork {
				b.failedLoad = append(b.failedLoad, ev.Entry.URL+": "+ev.Entry.Text)
			} else {
				b.errors = append(b.errors, string(ev.Entry.Source)+": "+ev.Entry.Text)
			}
		}
	}
}

func (b *browser) snapshot() (off, errs, failed []string, status map[string][]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	status = map[string][]int{}
	for k, v := range b.apiStatus {
		status[k] = append([]int(nil), v...)
	}
	return append([]string(nil), b.offOrigin...), append([]string(nil), b.errors...), append([]string(nil), b.failedLoad...), status
}

// run runs steps with a timeout; on failure it keeps a screenshot in dir.
func (b *browser) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.screenshot(t, what)
		t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) screenshot(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	// Not t.TempDir: that is removed when the test ends, and the
	// screenshot is for the person reading the failure.
	dir, err := os.MkdirTemp("", "cairn-console-"+t.Name()[:min(len(t.Name()), 20)]+"-")
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(dir, strings.NewReplacer(" ", "-", "/", "-").Replace(name)+".png")
	if err := os.WriteFile(p, png, 0o600); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	t.Logf("screenshot kept: %s (the test's temp dir, kept after it)", p)
	return p
}

func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.screenshot(t, "eval")
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is truthy.
func (b *browser) waitJS(t *testing.T, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(25*time.Second))); err != nil {
		b.screenshot(t, what)
		t.Fatalf("wait for %s (%s): %v", what, expr, err)
	}
}

// noOverflow checks that the page is no wider than the viewport.
func (b *browser) noOverflow(t *testing.T, where string, width int) {
	t.Helper()
	if w := eval[int](t, b, `document.documentElement.scrollWidth`); w > width {
		b.screenshot(t, fmt.Sprintf("overflow-%s-%d", where, width))
		t.Errorf("%s at %d px: the page is %d px wide (overflows)", where, width, w)
	}
}

func TestConsoleInBrowser(t *testing.T) {
	chromiumPath(t)
	s := startConsoleStack(t)
	inc := s.incident

	// The console's files carry the CSP that keeps every request on this
	// origin; they load without the token.
	r, err := http.Get(s.admin + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if csp := r.Header.Get("Content-Security-Policy"); r.StatusCode != 200 || !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("GET /ui/: %d, CSP %q", r.StatusCode, csp)
	}

	t.Run("without token every call is refused", func(t *testing.T) {
		b := newBrowser(t, s.admin)
		b.run(t, "open incidents without token", chromedp.Navigate(s.admin+"/ui/#/incidents"))
		b.waitJS(t, "the page says it is not authorized",
			`!document.getElementById("auth-banner").hidden && document.getElementById("auth-banner").textContent.includes("Not authorized") && !!document.querySelector('[data-error="401"]')`)
		b.run(t, "open the incident without token", chromedp.Navigate(s.admin+"/ui/#/incidents/"+inc))
		b.waitJS(t, "the incident page says 401", fmt.Sprintf(`document.getElementById("main").dataset.route === "#/incidents/%s" && !!document.querySelector('[data-error="401"]') && !document.getElementById("chart")`, inc))
		// Its four calls (incident, state, postmortem, chart) all answered.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if _, _, _, st := b.snapshot(); len(st["/admin/incidents/"+inc+"/chart.svg"]) > 0 && len(st["/admin/state"]) > 0 && len(st["/admin/incidents/"+inc+"/postmortem"]) > 0 {
				break
			}
		}
		off, _, _, status := b.snapshot()
		calls := 0
		for path, codes := range status {
			for _, c := range codes {
				calls++
				if c != http.StatusUnauthorized {
					t.Errorf("without a token %s answered %d; want 401", path, c)
				}
			}
		}
		if calls < 5 {
			t.Errorf("the page made %d admin API calls without a token; want the list and the incident's calls (%v)", calls, status)
		}
		if len(off) > 0 {
			t.Errorf("requests left the admin origin: %v", off)
		}
		if n := eval[int](t, b, `document.querySelectorAll("tr[data-incident]").length`); n != 0 {
			t.Errorf("%d incidents shown without a token", n)
		}
	})

	b := newBrowser(t, s.admin)
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshot(t, "final")
		}
	})

	// The token, typed once into the dialog, by keyboard.
	b.run(t, "open the console", chromedp.Navigate(s.admin+"/ui/"))
	b.waitJS(t, "the overview asks for the token", `!document.getElementById("auth-banner").hidden`)
	b.run(t, "enter the token",
		chromedp.Click(chromedp.ID("token-button")),
		chromedp.WaitVisible(chromedp.ID("token-input")),
		chromedp.SendKeys(chromedp.ID("token-input"), consoleToken),
		chromedp.KeyEvent(kb.Enter))
	b.waitJS(t, "the overview with the route", `document.getElementById("auth-banner").hidden && !!document.getElementById("route-support-bot")`)
	if got := eval[string](t, b, `sessionStorage.getItem("cairn.adminToken")`); got != consoleToken {
		t.Errorf("sessionStorage token = %q", got)
	}
	if strings.Contains(eval[string](t, b, `location.href`), consoleToken) {
		t.Error("the token is in the URL")
	}

	// The incident list.
	b.run(t, "open the incident list", chromedp.Navigate(s.admin+"/ui/#/incidents"))
	b.waitJS(t, "the incident in the list", fmt.Sprintf(`!!document.querySelector('tr[data-incident=%q] a')`, inc))

	// The incident page and its chart.
	b.run(t, "open the incident", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-incident=%q] a`, inc))))
	b.waitJS(t, "the chart", `!!document.querySelector("#chart svg polyline.series") && !!document.getElementById("btn-rollback")`)
	series := eval[[]string](t, b, `[...new Set([...document.querySelectorAll("#chart svg polyline.series")].map(p => p.dataset.series))].sort()`)
	if len(series) != 2 || !strings.Contains(strings.Join(series, ","), "cohort canary") || !strings.Contains(strings.Join(series, ","), "cohort stable") {
		t.Errorf("chart series = %q; want one per cohort (stable, canary)", series)
	}
	for _, kind := range []string{"change", "first_failure", "detection"} {
		if n := eval[int](t, b, `document.querySelectorAll("#chart svg line.marker-`+kind+`").length`); n == 0 {
			t.Errorf("the chart has no %s marker", kind)
		}
	}
	if n := eval[int](t, b, `document.querySelectorAll("#chart svg line.rule").length`); n != 1 {
		t.Errorf("the chart has %d threshold lines; want 1", n)
	}

	// Keyboard: Tab from the top of the page reaches the rollback button;
	// Enter opens a real <dialog>; Tab, Tab, Enter confirms.
	b.run(t, "focus the page top", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.scrollTo(0,0); document.body.focus()`))
	reached := false
	for range 60 {
		b.run(t, "tab", chromedp.KeyEvent(kb.Tab))
		if eval[string](t, b, `document.activeElement ? document.activeElement.id : ""`) == "btn-rollback" {
			reached = true
			break
		}
	}
	if !reached {
		b.screenshot(t, "tab-order")
		t.Fatal("Tab never reached the rollback button")
	}
	b.run(t, "press Enter on rollback", chromedp.KeyEvent(kb.Enter))
	b.waitJS(t, "the confirmation dialog", `document.getElementById("confirm-dialog").open && document.activeElement.id === "confirm-reason"`)
	if tag := eval[string](t, b, `document.getElementById("confirm-dialog").tagName`); tag != "DIALOG" {
		t.Errorf("confirmation is a %s; want a <dialog>", tag)
	}
	b.run(t, "type the reason", chromedp.KeyEvent("canary breaks JSON"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Tab))
	if id := eval[string](t, b, `document.activeElement.id`); id != "confirm-ok" {
		t.Fatalf("focus after Tab, Tab in the dialog is on %q; want the confirm button", id)
	}
	b.run(t, "confirm", chromedp.KeyEvent(kb.Enter))
	b.waitJS(t, "the rollback reported", `(document.getElementById("action-status")||{}).textContent?.includes("Rolled back cohort canary")`)

	// The gateway did it: weight 0, audited, and the chart shows it.
	_, st := s.call(t, "GET", "/admin/state", "", consoleToken)
	var state struct {
		Routes []struct {
			Name    string
			Targets []struct {
				Cohort string
				Weight int
			}
		}
	}
	json.Unmarshal(st, &state)
	weight := -1
	for _, r := range state.Routes {
		for _, tg := range r.Targets {
			if r.Name == "support-bot" && tg.Cohort == "canary" {
				weight = tg.Weight
			}
		}
	}
	if weight != 0 {
		t.Errorf("canary weight after the console's rollback = %d; want 0", weight)
	}
	_, audit := s.call(t, "GET", "/admin/audit", "", consoleToken)
	var entries []struct{ Source, Route, Reason string }
	json.Unmarshal(audit, &entries)
	audited := false
	for _, e := range entries {
		if e.Source == "rollback:manual" && e.Route == "support-bot" && strings.Contains(e.Reason, "canary") {
			audited = true
		}
	}
	if !audited {
		t.Errorf("no rollback:manual audit entry for support-bot: %s", audit)
	}
	b.waitJS(t, "the rollback marker", `document.querySelectorAll("#chart svg line.marker-rollback").length > 0`)
	if shot := os.Getenv("CAIRN_CONSOLE_SCREENSHOT"); shot != "" {
		// README's screenshot: `CAIRN_CONSOLE_SCREENSHOT=$PWD/docs/console-incident.png go test ./cmd/cairn -run ConsoleInBrowser`.
		// The top of the incident page: facts, actions, chart, states.
		png, err := chromedp.Run(b.ctx, func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
			if _, err := chromedp.EmulateViewport(1280, 1500)(ctx, tg); err != nil {
				return nil, err
			}
			return chromedp.CaptureScreenshot()(ctx, tg)
		})
		chromedp.Do(b.ctx, chromedp.EmulateViewport(1280, 900))
		if err == nil {
			err = os.WriteFile(shot, png, 0o644)
		}
		if err != nil {
			t.Errorf("screenshot for the README: %v", err)
		}
	}

	// A during sample opens the request page with the same gateway ID.
	b.waitJS(t, "a during sample", `!!document.querySelector('section[data-phase="during"] article[data-request]')`)
	sample := eval[string](t, b, `document.querySelector('section[data-phase="during"] article[data-request]').dataset.request`)
	b.run(t, "open a during sample", chromedp.Click(chromedp.CSS(`section[data-phase="during"] article[data-request] h4 a`)))
	b.waitJS(t, "the request page", `!!document.getElementById("rec-gateway-id")`)
	if got := eval[string](t, b, `document.getElementById("rec-gateway-id").textContent`); got != sample || !strings.HasPrefix(got, "req_") {
		t.Errorf("request page shows gateway ID %q; want the sample's %q", got, sample)
	}

	// Usable at 1280 and 390 px: nothing wider than the viewport.
	pages := []string{"#/overview", "#/incidents", "#/incidents/" + inc, "#/requests/" + sample}
	for _, width := range []int{1280, 390} {
		b.run(t, "viewport", chromedp.EmulateViewport(int64(width), 900))
		for _, p := range pages {
			b.run(t, "open "+p, chromedp.Navigate(s.admin+"/ui/"+p))
			b.waitJS(t, p+" rendered", `!!document.querySelector("main h1") && !document.querySelector("main .notice.bad")`)
			b.noOverflow(t, p, width)
		}
	}

	off, errs, failed, status := b.snapshot()
	if len(off) > 0 {
		t.Errorf("requests left the admin origin: %v", off)
	}
	if len(errs) > 0 {
		t.Errorf("browser console errors: %q", errs)
	}
	// The only failed loads allowed are the 401s before the token was typed.
	for _, f := range failed {
		if !strings.Contains(f, "401") {
			t.Errorf("failed load: %s", f)
		}
	}
	if len(status["/admin/incidents/"+inc+"/chart.svg"]) == 0 {
		t.Errorf("the page never fetched the chart: %v", status)
	}
}
