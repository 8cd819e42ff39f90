package loadtest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// Children bind port 0 and report the port in their ready file: two mocks
// and a gateway get distinct real ports and answer on them, and a child
// that cannot bind is reported at once with its log (the old loadtest
// picked a port, released it and passed the number on, and another
// process could take it in between).
func TestStartReady(t *testing.T) {
	bin := buildCairn(t)
	e := &runEnv{ctx: context.Background(), dir: t.TempDir(), o: Options{Binary: bin}, rep: &Report{Scenario: "test", Params: map[string]float64{}}}
	e.procs = newProcGroup(e.dir)
	t.Cleanup(e.procs.closeAll)
	a, err := e.startMock(mockSpec{name: "mock-a", prefix: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.startMock(mockSpec{name: "mock-b", prefix: "b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{a, b} {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
			t.Fatalf("mock address %q is not a bound port", addr)
		}
	}
	if a == b {
		t.Fatalf("both mocks report %s", a)
	}
	hop, _, err := e.startHop("hop", "http://"+a)
	if err != nil {
		t.Fatal(err)
	}
	if err := tcpReady(hop)(context.Background()); err != nil {
		t.Errorf("hop on its reported address %s: %v", hop, err)
	}

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	t0 := time.Now()
	_, _, err = e.procs.startReady(e.ctx, "clash", bin, []string{"mock-provider", "--listen", held.Addr().String()}, nil)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("mock on a held port: %v; want the exit and its log", err)
	}
	if d := time.Since(t0); d > childReadyTimeout/2 {
		t.Errorf("the failure took %v; want it at the child's exit", d)
	}
}
