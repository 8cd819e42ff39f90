package main

import (
	"testing"

	"github.com/cairnhq/cairn/configs"
)

// The soft memory limit is 208 MiB with the default budgets and grows
// with budgets raised past them, so that a larger budget never runs the
// garbage collector against a limit its live heap needs.
func TestMemoryLimitFollowsBudgets(t *testing.T) {
	def := &configs.Config{Server: configs.Server{MaxInflightBodyBytes: 24 << 20},
		Capture: configs.Capture{MaxQueueBytes: 32 << 20, MemoryBytes: 16 << 20}}
	if got := memoryLimit(def); got != 208<<20 {
		t.Errorf("memoryLimit(defaults) = %d MiB; want 208", got>>20)
	}
	big := *def
	big.Server.MaxInflightBodyBytes, big.Capture.MaxQueueBytes = 56<<20, 128<<20
	if got, want := memoryLimit(&big), int64(208<<20+3*32<<20+96<<20); got != want {
		t.Errorf("memoryLimit(raised budgets) = %d MiB; want %d", got>>20, want>>20)
	}
	small := *def
	small.Capture.MemoryBytes = 1 << 20
	if got := memoryLimit(&small); got != 208<<20 {
		t.Errorf("memoryLimit(smaller ring) = %d MiB; want the base 208", got>>20)
	}
}
