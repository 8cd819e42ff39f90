//go:build !race

package ratelimit

import (
	"context"
	"testing"
)

// TestMemoryAllocs is the allocation budget of an in-memory check.
func TestMemoryAllocs(t *testing.T) {
	l := NewMemory(nil)
	ctx := context.Background()
	lim := Limits{RPM: 1 << 30, TPM: 1 << 30}
	l.Check(ctx, "app", lim, "id")
	if n := testing.AllocsPerRun(1000, func() { l.Check(ctx, "app", lim, "id") }); n != 0 {
		t.Errorf("Memory.Check allocates %v times per call; want 0", n)
	}
}
