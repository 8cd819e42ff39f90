package loadtest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A request the drill cancels by stopping its own load is no failure of
// the gateway (the drills counted them as "failed after the rollback"
// when the machine was loaded enough to have some in flight); one that
// had already run past stopGrace, or failed while the load ran, is.
func TestDrillCutOffByStop(t *testing.T) {
	running := context.Background()
	stopped, stop := context.WithCancel(context.Background())
	stop()
	t0 := time.Now()
	err := errors.New("context canceled")
	tests := []struct {
		name string
		err  error
		ctx  context.Context
		took time.Duration
		want bool
	}{
		{"in flight at the stop", err, stopped, 80 * time.Millisecond, true},
		{"already slow at the stop", err, stopped, 2 * stopGrace, false},
		{"failed while the load ran", err, running, 80 * time.Millisecond, false},
		{"answered", nil, stopped, 80 * time.Millisecond, false},
	}
	for _, tt := range tests {
		if got := cutOffByStop(tt.err, tt.ctx, t0, t0.Add(tt.took)); got != tt.want {
			t.Errorf("%s: cut off %v; want %v", tt.name, got, tt.want)
		}
	}
}
