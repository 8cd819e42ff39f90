package readyfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWaitReadsOnlyItsProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready.json")
	// A file left by a killed earlier run (another PID) is not the answer.
	if err := Write(path, Addrs{PID: 1, Listen: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	want := Addrs{PID: 4242, Listen: "127.0.0.1:41234", AdminListen: "127.0.0.1:41235"}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = Write(path, want)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Wait(ctx, path, 4242, nil)
	if err != nil || got != want {
		t.Fatalf("Wait = %+v, %v; want %+v", got, err, want)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".ready-*")); len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

func TestWaitEndsAtExit(t *testing.T) {
	exited := make(chan struct{})
	close(exited)
	_, err := Wait(context.Background(), filepath.Join(t.TempDir(), "never.json"), 7, exited)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Wait after exit = %v; want ErrExited", err)
	}
}

func TestWriteNeedsItsDirectory(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "missing", "ready.json"), Addrs{PID: os.Getpid()})
	if err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}
