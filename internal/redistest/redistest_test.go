package redistest

import (
	"net"
	"testing"
	"time"
)

// A port another process takes between the pick and redis-server's bind
// costs a retry on another port, not the test; before, the PING check
// could even pass against the other process's server.
func TestStartRetriesATakenPort(t *testing.T) {
	other := Start(t) // a Redis on the port: PING on it would pass
	picks := 0
	s := start(t, func(tb testing.TB) string {
		picks++
		if picks == 1 {
			return other.Addr
		}
		return freeAddr(tb)
	}, nil)
	if s.Addr == other.Addr || picks != 2 {
		t.Fatalf("Addr = %s after %d picks; want a second port, not %s", s.Addr, picks, other.Addr)
	}
	if err := ping(s.Addr, nil); err != nil {
		t.Fatal(err)
	}
}

// Restart keeps the address (clients are configured with it) and waits
// for a port that another process holds for a moment.
func TestRestartWaitsForItsPort(t *testing.T) {
	s := Start(t)
	addr := s.Addr
	s.Kill()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		ln.Close()
		close(released)
	}()
	s.Restart()
	<-released
	if s.Addr != addr {
		t.Fatalf("Addr = %s after Restart; want %s", s.Addr, addr)
	}
	if err := ping(s.Addr, nil); err != nil {
		t.Fatal(err)
	}
}

func TestStartArgsPassword(t *testing.T) {
	s := StartArgs(t, "--requirepass", "pw-redistest")
	if err := ping(s.Addr, []string{"--requirepass", "pw-redistest"}); err != nil {
		t.Fatal(err)
	}
	if err := ping(s.Addr, nil); err == nil {
		t.Fatal("PING without AUTH passed on a server with requirepass")
	}
}
