package loadtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestOverheadManyKeysRoutes runs the overhead scenario (quick profile)
// against the real binary with the gateway padded to 2,000 keys and 2,000
// glob routes: the params record the counts, clients ask for bench-large
// (reached through the last glob), and every invariant holds, so every
// request was authenticated and routed.
func TestOverheadManyKeysRoutes(t *testing.T) {
	bin := buildCairn(t)
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Run(ctx, "overhead", Options{Binary: bin, Quick: true, Seconds: 1, Out: &progress, WorkDir: t.TempDir(), Keys: 2000, Routes: 2000})
	if err != nil {
		t.Fatalf("Run(overhead --keys 2000 --routes 2000): %v\nprogress:\n%s", err, progress.String())
	}
	if rep.Params["keys"] != 2000 || rep.Params["routes"] != 2000 {
		t.Errorf("params keys=%v routes=%v; want 2000 each", rep.Params["keys"], rep.Params["routes"])
	}
	if !strings.Contains(progress.String(), "clients ask for bench-large") {
		t.Errorf("progress does not name the padded model: %s", progress.String())
	}
	checkInvariants(t, rep)
}
