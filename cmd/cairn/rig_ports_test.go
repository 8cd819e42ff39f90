package main

// The rig's own tests: children bind port 0 and report it, so gateways
// start whatever else takes ports meanwhile, and a child that dies ends
// the wait for it at once.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const rigConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
providers:
  - { name: mock, base_url: "http://%[4]s/v1", timeout: 5s }
routes:
  - { name: support-bot, targets: [ { provider: mock, model: m } ] }
`

// portChurn takes ephemeral loopback ports as fast as it can while it
// runs, holding the newest ring of them (as other test processes, other
// gateways and outgoing connections do on a CI machine), so that a port
// picked, released and bound later is likely to be taken in between.
type portChurn struct {
	stop  chan struct{}
	done  chan struct{}
	taken int
}

func startPortChurn(t *testing.T, hold int) *portChurn {
	t.Helper()
	c := &portChurn{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		ring := make([]net.Listener, hold)
		defer func() {
			for _, ln := range ring {
				if ln != nil {
					ln.Close()
				}
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-c.stop:
				return
			default:
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				time.Sleep(time.Millisecond) // out of ports or descriptors: let the ring turn
				continue
			}
			if old := ring[i%hold]; old != nil {
				old.Close()
			}
			ring[i%hold] = ln
			c.taken++
			if i%64 == 0 {
				time.Sleep(100 * time.Microsecond) // leave the gateways some CPU
			}
		}
	}()
	t.Cleanup(c.end)
	return c
}

// end stops the churn and returns how many ports it took.
func (c *portChurn) end() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// Twenty gateways start at once while another goroutine takes thousands of
// ephemeral ports: every one starts (the old rig picked ports with
// listen :0 + close and lost some to the churn: "address already in use"),
// every one answers on the addresses it reported, and no two share one.
func TestRigGatewaysStartAmidPortChurn(t *testing.T) {
	const n = 20
	_, mock := startMockFlags(t, "--request-id-prefix", "rig")
	gs := make([]*relGateway, n)
	for i := range gs {
		dir := t.TempDir()
		gs[i] = &relGateway{dataDir: filepath.Join(dir, "data"), cfgPath: filepath.Join(dir, "cairn.yaml")}
		cfg := fmt.Sprintf(rigConfig, anyPort, anyPort, gs[i].dataDir, mock)
		if err := os.WriteFile(gs[i].cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	churn := startPortChurn(t, 3000)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, g := range gs {
		wg.Go(func() { errs[i] = g.launch(t) })
	}
	wg.Wait()
	churn.end()
	t.Logf("figure: %d gateways started concurrently while %d ephemeral ports were taken", n, churn.taken)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, g := range gs {
		for _, a := range []string{g.api, g.admin} {
			if j, dup := seen[a]; dup {
				t.Errorf("gateways %d and %d both report %s", j, i, a)
			}
			seen[a] = i
		}
		if r := postChat(g.api, "", chatBody("support-bot", "")); r.err != nil || r.status != 200 {
			t.Errorf("gateway %d on %s: %v %d %s", i, g.api, r.err, r.status, r.body)
		}
	}
}

// cairn serve --ready-file: both listeners on port 0 get distinct real
// ports, the file names them with the PID once they accept connections,
// and a clean exit removes it (a supervisor never reads a stale file).
func TestServeReadyFile(t *testing.T) {
	mock := startMockProc(t, "rf")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cairn.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(rigConfig, anyPort, anyPort, filepath.Join(dir, "data"), mock)), 0o600); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready.json")
	p := startProc(t, nil, "serve", "--config", cfgPath, "--ready-file", ready)
	a, err := waitReadyFile(p, ready)
	if err != nil {
		t.Fatal(err)
	}
	if a.PID != p.cmd.Process.Pid {
		t.Errorf("ready file pid = %d; want %d", a.PID, p.cmd.Process.Pid)
	}
	for _, addr := range []string{a.Listen, a.AdminListen} {
		if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" || port == "" {
			t.Fatalf("ready file %+v: %q is not a bound loopback address", a, addr)
		}
	}
	if a.Listen == a.AdminListen {
		t.Fatalf("ready file %+v: both listeners on one address", a)
	}
	waitHTTP(t, p, "http://"+a.AdminListen+"/readyz")
	if r := postChat("http://"+a.Listen, "", chatBody("support-bot", "")); r.err != nil || r.status != 200 {
		t.Errorf("chat on the reported API address: %v %d %s", r.err, r.status, r.body)
	}
	// /admin/state names the same API address.
	r, err := http.Get("http://" + a.AdminListen + "/admin/state")
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Listen string }
	err = json.NewDecoder(r.Body).Decode(&st)
	r.Body.Close()
	if err != nil || st.Listen != a.Listen {
		t.Errorf("/admin/state listen = %q (%v); want %s", st.Listen, err, a.Listen)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(ready); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ready file after a clean exit: %v; want it removed", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".ready-*")); len(m) > 0 {
		t.Errorf("temporary ready files left behind: %v", m)
	}
}

// A child that cannot start ends the waits for it at once with its exit
// status and what it said; the old waitHTTP polled for 60 s after the
// child had exited and then reported only the last connection error.
func TestRigWaitEndsWhenChildExits(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cairn.yaml")
	cfg := fmt.Sprintf(rigConfig, held.Addr().String(), anyPort, filepath.Join(dir, "data"), deadAddr(t))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	const soon = 20 * time.Second // well under startupWait, generous for a loaded machine
	for _, tc := range []struct {
		name string
		wait func(p *proc) error
	}{
		{"waitHTTP", func(p *proc) error { return waitHTTPErr(p, "http://"+held.Addr().String()+"/readyz") }},
		{"ready file", func(p *proc) error {
			_, err := waitReadyFile(p, filepath.Join(dir, "never-written.json"))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProc(t, nil, "serve", "--config", cfgPath)
			t0 := time.Now()
			err := tc.wait(p)
			took := time.Since(t0)
			if err == nil {
				t.Fatal("the wait succeeded for a gateway that cannot bind its port")
			}
			if took > soon {
				t.Errorf("the wait took %v after the child exited; want it to end at the exit", took)
			}
			for _, want := range []string{"exit status 1", "address already in use"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("wait error lacks %q:\n%v", want, err)
				}
			}
		})
	}
	// A mock that exits before writing its ready file is reported the same way.
	_, _, err = startBoundErr(t, nil, "mock-provider", "--listen", held.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("mock on a held port: %v", err)
	}
}
