package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Child process limits.
const (
	childReadyTimeout = 20 * time.Second
	childStopGrace    = 5 * time.Second
	childLogTail      = 2048
	// clockTicks is USER_HZ, the unit of /proc/PID/stat times; it is 100
	// on every Linux architecture Go supports.
	clockTicks = 100
)

// child is one process a scenario started: a mock provider, a gateway, the
// reference proxy or redis-server. Its output goes to a log file in the work
// directory. It is stopped by stop (or by its procGroup); all methods are
// safe for concurrent use.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File

	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done

	stopOnce sync.Once
}

// procGroup owns every child a scenario starts and stops them all, newest
// first, on closeAll. Safe for concurrent use.
type procGroup struct {
	dir string

	mu       sync.Mutex
	children []*child
}

func newProcGroup(dir string) *procGroup { return &procGroup{dir: dir} }

// start runs bin with args (and env added to the environment), logging its
// stdout and stderr to DIR/name.log.
func (g *procGroup) start(name, bin string, args, env []string) (*child, error) {
	logPath := filepath.Join(g.dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: log file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = g.dir
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, logFile: lf, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		lf.Close()
		close(c.done)
	}()
	g.mu.Lock()
	g.children = append(g.children, c)
	g.mu.Unlock()
	return c, nil
}

// closeAll stops every child, newest first, and waits for each to exit.
func (g *procGroup) closeAll() {
	g.mu.Lock()
	cs := g.children
	g.children = nil
	g.mu.Unlock()
	var wg sync.WaitGroup
	for i := len(cs) - 1; i >= 0; i-- {
		wg.Add(1)
		go func(c *child) {
			defer wg.Done()
			c.stop(childStopGrace)
		}(cs[i])
	}
	wg.Wait()
}

// pid returns the process ID.
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs, and waits for the
// exit. It is idempotent.
func (c *child) stop(grace time.Duration) {
	c.stopOnce.Do(func() {
		if c.exited() {
			return
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		_ = c.cmd.Process.Kill()
		<-c.done
	})
}

// tail returns the end of the child's log, for error messages.
func (c *child) tail() string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > childLogTail {
		f.Seek(st.Size()-childLogTail, io.SeekStart) //nolint:errcheck // best effort
	}
	b, _ := io.ReadAll(io.LimitReader(f, childLogTail))
	return strings.TrimSpace(string(b))
}

// failure describes a child that died or never became ready.
func (c *child) failure(what string) error {
	state := "running"
	if c.exited() {
		state = "exited"
		if c.waitErr != nil {
			state = "exited: " + c.waitErr.Error()
		}
	}
	msg := fmt.Sprintf("%s %s (%s; log %s)", c.name, what, state, c.logPath)
	if t := c.tail(); t != "" {
		msg += ":\n" + t
	}
	return errors.New(msg)
}

// waitReady polls check every 20 ms until it succeeds, the child exits,
// ctx ends or childReadyTimeout passes.
func (c *child) waitReady(ctx context.Context, check func(context.Context) error) error {
	deadline := time.Now().Add(childReadyTimeout)
	var last error
	for {
		if c.exited() {
			return c.failure("exited before it was ready")
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for %s: %w", c.name, ctx.Err())
		}
		if time.Now().After(deadline) {
			return c.failure(fmt.Sprintf("not ready after %s (last check: %v)", childReadyTimeout, last))
		}
		select {
		case <-ctx.Done():
		case <-c.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// httpReady returns a readiness check that GETs url and wants a 200.
func httpReady(url string) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) //nolint:errcheck // drained for reuse only
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
		}
		return nil
	}
}

// tcpReady returns a readiness check that dials addr.
func tcpReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// freeAddr returns a loopback address ("127.0.0.1:PORT") that was free a
// moment ago. The port is released before return, so another process can
// take it: only for children that cannot bind port 0 and report it
// (redis-server), and the caller retries on "address already in use".
// Cairn's own children use startReady.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// procSample is one reading of a process's resource use.
type procSample struct {
	CPU     time.Duration // user + system time so far
	RSS     int64         // resident set, bytes
	HWM     int64         // peak resident set, bytes
	Threads int
	FDs     int
}

// readProc reads /proc/PID/stat, /proc/PID/status and /proc/PID/fd.
func readProc(pid int) (procSample, error) {
	var s procSample
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, fmt.Errorf("read proc stat: %w", err)
	}
	cpu, err := parseProcStatCPU(stat)
	if err != nil {
		return s, err
	}
	s.CPU = cpu
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, fmt.Errorf("read proc status: %w", err)
	}
	s.RSS, s.HWM, s.Threads = parseProcStatus(status)
	if ents, err := os.ReadDir(dir + "/fd"); err == nil {
		s.FDs = len(ents)
	}
	return s, nil
}

// parseProcStatCPU returns utime + stime from the contents of
// /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseProcStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("parse proc stat: no command field")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse proc stat: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse proc stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// parseProcStatus returns VmRSS and VmHWM (bytes) and Threads from the
// contents of /proc/PID/status; missing fields are 0.
func parseProcStatus(status []byte) (rss, hwm int64, threads int) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		case "Threads":
			threads = int(n)
		}
	}
	return rss, hwm, threads
}

// procSampler samples a process every interval in its own goroutine until
// stop; it keeps the peak RSS and every sample. Safe for concurrent use.
type procSampler struct {
	pid      int
	interval time.Duration
	stopc    chan struct{}
	donec    chan struct{}

	mu      sync.Mutex
	samples []timedSample
	peakRSS int64
}

type timedSample struct {
	At time.Time
	procSample
}

// maxProcSamples bounds a sampler's memory (an hour at 1 s).
const maxProcSamples = 3600

func startSampler(pid int, interval time.Duration) *procSampler {
	s := &procSampler{pid: pid, interval: interval, stopc: make(chan struct{}), donec: make(chan struct{})}
	go s.run()
	return s
}

func (s *procSampler) run() {
	defer close(s.donec)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if ps, err := readProc(s.pid); err == nil {
			s.mu.Lock()
			s.peakRSS = max(s.peakRSS, ps.RSS)
			if len(s.samples) < maxProcSamples {
				s.samples = append(s.samples, timedSample{At: time.Now(), procSample: ps})
			}
			s.mu.Unlock()
		}
		select {
		case <-s.stopc:
			return
		case <-t.C:
		}
	}
}

// stop ends the sampling and returns the peak RSS and the samples.
func (s *procSampler) stop() (peak int64, samples []timedSample) {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	<-s.donec
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakRSS, s.samples
}
