package main

// The end-to-end rig: how tests start children without port races. Every
// cairn child (serve, mock-provider) binds port 0 and writes the address
// the kernel gave it to its --ready-file; the test reads it there. Picking
// a "free" port, closing it and handing the number to a child that binds
// it later lost the port to anything else on the machine in between (CI:
// TestEvidenceRedisHungBackfill, "address already in use" on the admin
// port). Waits for a child end at once, with its exit status and the tail
// of its output, when the child exits.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/readyfile"
)

// anyPort is the listen address that lets the kernel choose the port.
const anyPort = "127.0.0.1:0"

// startupWait bounds the waits for a child process to come up (and for
// what it writes asynchronously to show). It is generous because it costs
// nothing when the machine is fast, while a loaded CI box (2 cores, -race,
// other packages' tests) has taken over 10 s to start a replica; a child
// that exits ends the wait at once.
const startupWait = 60 * time.Second

// proc is a child process owned by a test. One goroutine reaps it; use
// wait and exited, never cmd.Wait or cmd.ProcessState.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed once the process has exited and its output is copied
	err  error         // cmd.Wait's result, valid after done
}

// lockedBuffer is the child's output: written by exec's copying goroutine
// while the test reads it (a bare bytes.Buffer is a data race there).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// startProc runs the cairn binary with args (env added to the
// environment); the child is killed when the test ends.
func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startCommand(t, exec.Command(cairnBin, args...), args[0], env)
}

// startCommand starts cmd (any program) as a proc named name.
func startCommand(t *testing.T, cmd *exec.Cmd, name string, env []string) *proc {
	t.Helper()
	p, err := startCommandErr(t, cmd, name, env)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startCommandErr is startCommand for any goroutine: it reports instead
// of failing the test.
func startCommandErr(t *testing.T, cmd *exec.Cmd, name string, env []string) (*proc, error) {
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	// cmd.Wait, not Process.Wait: it also waits for the goroutines
	// copying the output into out.
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
		}
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return p, nil
}

// wait waits for the process to exit and returns cmd.Wait's error.
func (p *proc) wait() error {
	<-p.done
	return p.err
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// exitReport describes an exited process: its exit status and the end of
// its output. Call it after done.
func (p *proc) exitReport() string {
	status := "exit status 0"
	if p.err != nil {
		status = p.err.Error()
	}
	out := p.out.String()
	if len(out) > 4096 {
		out = "…" + out[len(out)-4096:]
	}
	return fmt.Sprintf("%s exited (%s); its output ends:\n%s", p.name, status, out)
}

// startBound runs the cairn binary with args and --ready-file, and returns
// it with the addresses it bound once it has written them. The test fails
// at once, with the exit status and output, if the child exits first.
func startBound(t *testing.T, env []string, args ...string) (*proc, readyfile.Addrs) {
	t.Helper()
	p, a, err := startBoundErr(t, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p, a
}

// startBoundErr is startBound for any goroutine.
func startBoundErr(t *testing.T, env []string, args ...string) (*proc, readyfile.Addrs, error) {
	ready := filepath.Join(t.TempDir(), "ready.json")
	p, err := startCommandErr(t, exec.Command(cairnBin, append(args, "--ready-file", ready)...), args[0], env)
	if err != nil {
		return nil, readyfile.Addrs{}, err
	}
	a, err := waitReadyFile(p, ready)
	return p, a, err
}

func waitReadyFile(p *proc, path string) (readyfile.Addrs, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startupWait)
	defer cancel()
	a, err := readyfile.Wait(ctx, path, p.cmd.Process.Pid, p.done)
	if errors.Is(err, readyfile.ErrExited) {
		return a, fmt.Errorf("%s before it wrote %s: %s", p.name, path, p.exitReport())
	}
	return a, err
}

// waitHTTP waits until url answers below 500. It fails at once when p (if
// not nil: the child that serves url) exits.
func waitHTTP(t *testing.T, p *proc, url string) {
	t.Helper()
	if err := waitHTTPErr(p, url); err != nil {
		// startProc's cleanup logs the whole output of a failed test.
		t.Fatal(err)
	}
}

func waitHTTPErr(p *proc, url string) error {
	var done <-chan struct{}
	if p != nil {
		done = p.done
	}
	// A per-attempt timeout: a child that accepted the connection and
	// then hung must not hold the loop past its exit or the deadline.
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.NewTimer(startupWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no attempt"
	for {
		r, err := client.Get(url)
		if err == nil {
			r.Body.Close()
			if r.StatusCode < 500 {
				return nil
			}
			last = r.Status
		} else {
			last = err.Error()
		}
		select {
		case <-done:
			return fmt.Errorf("waiting for %s: %s", url, p.exitReport())
		case <-deadline.C:
			return fmt.Errorf("%s did not come up in %v (last: %s)", url, startupWait, last)
		case <-tick.C:
		}
	}
}

// deadAddr returns a loopback address where nothing listens and nothing
// will: a socket is bound to it (without listen) until the test ends, so
// connections are refused and no other process can take the port.
func deadAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// relGateway is one cairn serve process, its config and the addresses it
// bound (base URLs, "http://127.0.0.1:PORT"). A restart (start after the
// process exited) binds new ports and updates api and admin.
type relGateway struct {
	api, admin, dataDir, cfgPath string
	env                          []string
	gw                           *proc
}

// relOption adjusts how startRelGateway sets up a gateway.
type relOption func(*relSetup)

type relSetup struct {
	env  []string
	prep func(dir string)
}

// relEnv adds environment variables (NAME=value) to the gateway's.
func relEnv(env ...string) relOption {
	return func(s *relSetup) { s.env = append(s.env, env...) }
}

// relPrep runs prep on the config's directory before the gateway starts
// (to write schema files beside the config).
func relPrep(prep func(dir string)) relOption {
	return func(s *relSetup) { s.prep = prep }
}

// startRelGateway writes cfg (with %[1]s the API address, %[2]s the admin
// address, both port 0, and %[3]s the data dir) and starts cairn serve on
// it.
func startRelGateway(t *testing.T, cfg string, opts ...relOption) *relGateway {
	t.Helper()
	var s relSetup
	for _, o := range opts {
		o(&s)
	}
	dir := t.TempDir()
	if s.prep != nil {
		s.prep(dir)
	}
	g := &relGateway{dataDir: filepath.Join(dir, "data"), cfgPath: filepath.Join(dir, "cairn.yaml"), env: s.env}
	if err := os.WriteFile(g.cfgPath, []byte(fmt.Sprintf(cfg, anyPort, anyPort, g.dataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	g.start(t)
	return g
}

// serveConfig writes cfg (its listen and admin_listen anyPort) to cfgPath,
// starts cairn serve on it with env and waits until it is ready.
func serveConfig(t *testing.T, cfgPath, cfg string, env ...string) *relGateway {
	t.Helper()
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &relGateway{cfgPath: cfgPath, env: env}
	g.start(t)
	return g
}

// start starts cairn serve on the config and waits for /readyz.
func (g *relGateway) start(t *testing.T) {
	t.Helper()
	if err := g.launch(t); err != nil {
		t.Fatal(err)
	}
}

// launch is start for any goroutine.
func (g *relGateway) launch(t *testing.T) error {
	p, a, err := startBoundErr(t, g.env, "serve", "--config", g.cfgPath)
	if p != nil {
		g.gw = p
	}
	if err != nil {
		return err
	}
	g.api, g.admin = "http://"+a.Listen, "http://"+a.AdminListen
	return waitHTTPErr(g.gw, g.admin+"/readyz")
}

var listenLine = regexp.MustCompile(`(?m)^(listen|admin_listen):.*$`)

// boundConfig writes a copy of the config, beside it, whose listen and
// admin_listen are the addresses the gateway bound, for a CLI that finds
// the gateway through --config.
func (g *relGateway) boundConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(g.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	bound := listenLine.ReplaceAllStringFunc(string(b), func(l string) string {
		if strings.HasPrefix(l, "admin_listen:") {
			return "admin_listen: " + strings.TrimPrefix(g.admin, "http://")
		}
		return "listen: " + strings.TrimPrefix(g.api, "http://")
	})
	path := strings.TrimSuffix(g.cfgPath, filepath.Ext(g.cfgPath)) + ".bound.yaml"
	if err := os.WriteFile(path, []byte(bound), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pickPortForForeignChild returns a loopback address that was free a
// moment ago, for a child that cannot bind port 0 and report it (a
// third-party program). The port can be taken before the child binds it:
// callers must retry with a new one when the child says "address already
// in use" (startForeign does).
func pickPortForForeignChild(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", anyPort)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startForeign starts a third-party program that must be told its port:
// args(addr) builds its command for a candidate address, ready(p, addr)
// waits until it serves (nil) or reports why not. A child that exits
// naming "address already in use" is retried on another port, up to 5
// times. It returns the child and its address.
func startForeign(t *testing.T, name string, args func(addr string) *exec.Cmd, ready func(p *proc, addr string) error) (*proc, string) {
	t.Helper()
	var last error
	for range 5 {
		addr := pickPortForForeignChild(t)
		p := startCommand(t, args(addr), name, nil)
		err := ready(p, addr)
		if err == nil {
			return p, addr
		}
		last = err
		if !p.exited() || !strings.Contains(p.out.String(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("%s lost port %s to another process before binding it; retrying on another", name, addr)
	}
	t.Fatalf("%s: 5 ports taken in a row: %v", name, last)
	return nil, ""
}

// waitOutput waits until p's output matches re and returns the match
// (with its groups). It fails at once when p exits.
func waitOutput(t *testing.T, p *proc, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.NewTimer(startupWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.out.String()); m != nil {
				return m
			}
			t.Fatalf("waiting for %q: %s", re, p.exitReport())
		case <-deadline.C:
			t.Fatalf("%s printed no %q in %v", p.name, re, startupWait)
		case <-tick.C:
		}
	}
}
