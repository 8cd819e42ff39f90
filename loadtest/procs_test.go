package loadtest

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"plain", "1234 (cairn) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0", 3 * time.Second, true},
		{"name with spaces and parens", "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 0 0", 100 * time.Millisecond, true},
		{"truncated", "77 (x) R 1 2 3", 0, false},
		{"no command", "garbage", 0, false},
		{"bad number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a 1 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStatCPU([]byte(tt.in))
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseProcStatCPU(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseProcStatus(t *testing.T) {
	in := "Name:\tcairn\nVmHWM:\t   61440 kB\nVmRSS:\t   51200 kB\nThreads:\t9\nbroken line\nVmSwap:\t x kB\n"
	rss, hwm, threads := parseProcStatus([]byte(in))
	if rss != 50<<20 || hwm != 60<<20 || threads != 9 {
		t.Errorf("parseProcStatus = %d, %d, %d; want %d, %d, 9", rss, hwm, threads, 50<<20, 60<<20)
	}
}

func TestReadProcSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatalf("readProc(self): %v", err)
	}
	if s.RSS <= 0 || s.HWM < s.RSS || s.Threads < 1 || s.FDs < 3 {
		t.Errorf("readProc(self) = %+v", s)
	}
	sm := startSampler(os.Getpid(), 5*time.Millisecond)
	time.Sleep(30 * time.Millisecond)
	peak, samples := sm.stop()
	if peak <= 0 || len(samples) < 2 {
		t.Errorf("sampler: peak %d, %d samples; want a peak and several samples", peak, len(samples))
	}
	if p2, _ := sm.stop(); p2 != peak {
		t.Errorf("second stop = %d; want %d", p2, peak)
	}
}

func TestProcGroup(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	g := newProcGroup(t.TempDir())
	// A child that ignores SIGTERM must still be killed after the grace.
	stubborn, err := g.start("stubborn", sh, []string{"-c", "trap '' TERM; echo started; while true; do sleep 0.05; done"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	quick, err := g.start("quick", sh, []string{"-c", "echo bye from quick; exit 3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = quick.waitReady(ctx, func(context.Context) error { return context.DeadlineExceeded })
	if err == nil || !strings.Contains(err.Error(), "quick exited") || !strings.Contains(err.Error(), "bye from quick") {
		t.Errorf("waitReady on a dead child = %v; want it named, with its log", err)
	}
	if err := stubborn.waitReady(ctx, func(context.Context) error {
		if strings.Contains(stubborn.tail(), "started") {
			return nil
		}
		return context.DeadlineExceeded
	}); err != nil {
		t.Fatalf("waitReady: %v", err)
	}
	if err := alive(stubborn); err != nil {
		t.Errorf("alive(running) = %v", err)
	}
	start := time.Now()
	// closeAll uses the full grace; stop the stubborn one with a short one.
	stubborn.stop(100 * time.Millisecond)
	g.closeAll()
	if !stubborn.exited() || !quick.exited() {
		t.Errorf("children still running after closeAll")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %s", d)
	}
	if err := alive(stubborn); err == nil {
		t.Errorf("alive(stopped) = nil; want an error")
	}
}
