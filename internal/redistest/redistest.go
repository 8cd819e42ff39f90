// Package redistest starts a real redis-server on a free loopback port for
// tests, the way net/http/httptest starts a real HTTP server. Tests never
// use a Redis fake: the limiter's Lua, TTLs and the stream sink must meet the
// real thing. A test that cannot find redis-server fails with the command to
// install it (.ci/run installs it on a fresh machine).
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process owned by a test.
type Server struct {
	Addr string
	dir  string
	args []string
	tb   testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start launches redis-server on a free loopback port with persistence off,
// waits until it answers PING and stops it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartArgs(tb)
}

// StartArgs is Start with further redis-server arguments, such as
// "--requirepass", "secret".
func StartArgs(tb testing.TB, args ...string) *Server {
	tb.Helper()
	return start(tb, freeAddr, args)
}

// start is StartArgs with the port picker a parameter (tests hand it a
// taken port first).
func start(tb testing.TB, pick func(testing.TB) string, args []string) *Server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatalf("redis-server not found: install it (apt-get install -y redis-server) or run .ci/run")
	}
	s := &Server{dir: tb.TempDir(), tb: tb, args: args}
	tb.Cleanup(s.Kill)
	// redis-server cannot bind port 0 and say which port it got, so the
	// port is picked here and may be taken by another process before
	// redis-server binds it: then it exits saying so, and another port is
	// tried. A port is ours only once our process said it is ready.
	for attempt := 1; ; attempt++ {
		s.Addr = pick(tb)
		err := s.launch()
		if err == nil {
			return s
		}
		if !errors.Is(err, errAddrInUse) || attempt == maxAttempts {
			tb.Fatalf("start redis-server: %v", err)
		}
	}
}

// maxAttempts bounds the binds lost to other processes in a row.
const maxAttempts = 10

// URL returns the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr }

var errAddrInUse = errors.New("address already in use")

// launch starts redis-server on s.Addr and waits until it logs that it
// accepts connections and answers PING; it returns errAddrInUse (wrapped)
// when the port was taken.
func (s *Server) launch() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--protected-mode", "no"}, s.args...)
	cmd := exec.Command("redis-server", args...)
	out := &readyWriter{ready: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	timeout := time.NewTimer(startupWait)
	defer timeout.Stop()
	select {
	case <-out.ready:
	case <-done:
		s.mu.Lock()
		s.cmd = nil
		s.mu.Unlock()
		log := out.String()
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("port %s: %w", port, errAddrInUse)
		}
		return fmt.Errorf("redis-server on %s exited: %s", s.Addr, log)
	case <-timeout.C:
		return fmt.Errorf("redis-server on %s not ready within %v: %s", s.Addr, startupWait, out.String())
	}
	if err := ping(s.Addr, s.args); err != nil {
		return fmt.Errorf("redis-server on %s said it is ready but PING failed: %w", s.Addr, err)
	}
	return nil
}

// startupWait bounds a start on a loaded machine; an exit ends it at once.
const startupWait = 30 * time.Second

// readyWriter keeps redis-server's log and closes ready at the line that
// says it accepts connections (logged only once the port is bound).
type readyWriter struct {
	mu    sync.Mutex
	b     strings.Builder
	ready chan struct{}
	seen  bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if !w.seen && strings.Contains(w.b.String(), "Ready to accept connections") {
		w.seen = true
		close(w.ready)
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Kill stops the server at once (SIGKILL). Safe to call twice.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Kill()
	<-done
}

// Restart kills the server (if running) and starts a new, empty one on the
// same address (clients are configured with it). Should another process
// have taken the port in between, it waits for the port, up to about 5 s.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	for attempt := 1; ; attempt++ {
		err := s.launch()
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || attempt == maxAttempts {
			s.tb.Fatalf("restart redis-server on %s: %v", s.Addr, err)
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
}

// Pause freezes the server (SIGSTOP): connections stay open, nothing answers.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Dir is the server's working directory.
func (s *Server) Dir() string { return filepath.Clean(s.dir) }

// ping sends PING (after AUTH when args hold --requirepass) and wants
// +PONG.
func ping(addr string, args []string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for i, a := range args {
		if a == "--requirepass" && i+1 < len(args) {
			if _, err := fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(args[i+1]), args[i+1]); err != nil {
				return err
			}
			if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
				return fmt.Errorf("AUTH: %q %v", line, err)
			}
		}
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// freeAddr returns a loopback address that was free a moment ago (see
// StartArgs for why that is enough here).
func freeAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
