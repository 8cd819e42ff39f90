// Package readyfile is how a cairn process tells whoever started it the
// addresses it bound: `cairn serve --ready-file PATH` (and mock-provider,
// loadtest-hop, loadtest-reference) write a small JSON object once every
// listener is open. A test or supervisor can then give the process port 0
// ("127.0.0.1:0") and learn the port the kernel chose, instead of picking
// a "free" port, closing it and hoping nothing takes it before the child
// binds it (the race that failed CI with "address already in use").
package readyfile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Addrs is the content of a ready file.
type Addrs struct {
	// PID is the writing process, so that a reader never mistakes the file
	// of an earlier run (one that was killed before it could remove it)
	// for the one it waits for.
	PID int `json:"pid"`
	// Listen is the bound API (or only) listener, "127.0.0.1:41234".
	Listen string `json:"listen"`
	// AdminListen is the bound admin listener; empty for processes that
	// have none.
	AdminListen string `json:"admin_listen,omitempty"`
}

// Write stores a as JSON at path atomically (a temporary file in the same
// directory, then rename), so a reader sees either no file or all of it.
func Write(path string, a Addrs) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("ready file %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".ready-*")
	if err != nil {
		return fmt.Errorf("ready file %s: %w", path, err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("ready file %s: %w", path, err)
	}
	return nil
}

// Read returns the addresses in the ready file at path.
func Read(path string) (Addrs, error) {
	var a Addrs
	b, err := os.ReadFile(path)
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("ready file %s: %w", path, err)
	}
	return a, nil
}

// ErrExited is returned by Wait when the process ended before it wrote
// its ready file.
var ErrExited = errors.New("process exited before it was ready")

// Wait returns the addresses the process pid writes to path, once it has.
// It checks every 10 ms and gives up at once with ErrExited when exited is
// closed (the caller closes it when the process has been reaped), or with
// ctx's error. A file written by another PID is ignored.
func Wait(ctx context.Context, path string, pid int, exited <-chan struct{}) (Addrs, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if a, err := Read(path); err == nil && a.PID == pid {
			return a, nil
		}
		select {
		case <-exited:
			return Addrs{}, ErrExited
		case <-ctx.Done():
			return Addrs{}, fmt.Errorf("wait for ready file %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}
