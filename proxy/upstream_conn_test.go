package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestParseKeepAliveTimeout(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"timeout=5", 5 * time.Second},
		{"timeout=5, max=1000", 5 * time.Second},
		{"max=100, Timeout= 2", 2 * time.Second},
		{"max=100", 0},
		{"timeout=", 0},
		{"timeout=-3", 0},
		{"timeout=abc", 0},
		{"", 0},
	} {
		if got := parseKeepAliveTimeout([]byte(tt.in)); got != tt.want {
			t.Errorf("parseKeepAliveTimeout(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct{ ka, want time.Duration }{
		{5 * time.Second, 4 * time.Second},
		{time.Second, 500 * time.Millisecond},
		{60 * time.Second, 59 * time.Second},
	} {
		if got := keepAliveBudget(tt.ka); got != tt.want {
			t.Errorf("keepAliveBudget(%v) = %v; want %v", tt.ka, got, tt.want)
		}
	}
}

// TestUpstreamConnStale drives an upstreamConn over real loopback sockets:
// the first request on a connection is never checked; a request on a
// reused connection fails with errStaleConn before a byte is written when
// the peer closed it, or when it sat idle past the announced keep-alive
// budget; a live, fresh-enough connection writes normally.
func TestUpstreamConnStale(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if runtime.GOOS != "linux" {
		t.Skip("peerClosed needs poll(2) with POLLRDHUP")
	}
	type peer struct{ c net.Conn }
	peers := make(chan peer, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- peer{c: c}
		}
	}()
	reg := &connRegistry{}
	dial := func() (*upstreamConn, peer) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		uc := reg.wrap(c, false).(*upstreamConn)
		return uc, <-peers
	}
	// exchange writes a request and reads the peer's one-byte answer.
	exchange := func(uc *upstreamConn, p peer) {
		t.Helper()
		if _, err := uc.Write([]byte("req")); err != nil {
			t.Fatalf("first write: %v", err)
		}
		buf := make([]byte, 3)
		if _, err := io.ReadFull(p.c, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := p.c.Write([]byte("r")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(uc, buf[:1]); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("peer closed while idle", func(t *testing.T) {
		uc, p := dial()
		defer uc.Close()
		exchange(uc, p)
		p.c.Close()
		deadline := time.Now().Add(2 * time.Second)
		for !uc.probe.peerClosed() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // the FIN crosses loopback
		}
		if n, err := uc.Write([]byte("req2")); !errors.Is(err, errStaleConn) || n != 0 {
			t.Errorf("Write on a closed reused conn = %d, %v; want 0, errStaleConn", n, err)
		}
	})
	t.Run("idle past keep-alive budget", func(t *testing.T) {
		uc, p := dial()
		defer uc.Close()
		defer p.c.Close()
		exchange(uc, p)
		uc.setKeepAlive(time.Second) // budget 500 ms
		uc.lastRead.Store(time.Now().Add(-600 * time.Millisecond).UnixNano())
		if _, err := uc.Write([]byte("req2")); !errors.Is(err, errStaleConn) {
			t.Errorf("Write after 600 ms idle with keep-alive 1s = %v; want errStaleConn", err)
		}
	})
	t.Run("live and within budget", func(t *testing.T) {
		uc, p := dial()
		defer uc.Close()
		defer p.c.Close()
		exchange(uc, p)
		uc.setKeepAlive(5 * time.Second)
		if _, err := uc.Write([]byte("req")); err != nil {
			t.Errorf("Write on a live reused conn = %v; want nil", err)
		}
		// The rest of the same request is not checked again.
		if _, err := uc.Write([]byte("body")); err != nil {
			t.Errorf("second Write of the same request = %v", err)
		}
	})
	t.Run("unsolicited bytes on an idle plain connection", func(t *testing.T) {
		uc, p := dial()
		defer uc.Close()
		defer p.c.Close()
		exchange(uc, p)
		if _, err := p.c.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for !uc.probe.peerClosed() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if _, err := uc.Write([]byte("req2")); !errors.Is(err, errStaleConn) {
			t.Errorf("Write with a stray 408 pending = %v; want errStaleConn", err)
		}
	})
}

// resetConn is a net.Conn whose writes fail as on a connection the peer
// reset: nothing written, EPIPE.
type resetConn struct{ net.Conn }

func (resetConn) Write([]byte) (int, error) {
	return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}
}
func (resetConn) Read(p []byte) (int, error) { p[0] = 'r'; return 1, nil }
func (resetConn) Close() error               { return nil }
func (resetConn) LocalAddr() net.Addr        { return &net.TCPAddr{Port: 1} }

func TestUpstreamConnResetBeforeAnyByte(t *testing.T) {
	uc := (&connRegistry{}).wrap(resetConn{}, false).(*upstreamConn)
	// First request on a fresh connection: the error is not a stale one
	// (a fresh connection that fails is a real upstream failure).
	if _, err := uc.Write([]byte("req")); err == nil || errors.Is(err, errStaleConn) {
		t.Fatalf("fresh Write = %v; want EPIPE, not errStaleConn", err)
	}
	var b [1]byte
	_, _ = uc.Read(b[:])
	if _, err := uc.Write([]byte("req2")); !errors.Is(err, errStaleConn) || !errors.Is(err, syscall.EPIPE) {
		t.Errorf("reused Write = %v; want errStaleConn wrapping EPIPE", err)
	}
}
