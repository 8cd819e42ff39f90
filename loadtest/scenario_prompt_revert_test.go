package loadtest

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"
)

// The prompt-revert drill, quick profile, on one gateway and on three
// sharing one Redis: every invariant holds (reverted on every replica,
// nothing failed after, one incident).
func TestPromptRevertDrillSmoke(t *testing.T) {
	bin := buildCairn(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found: install it (apt-get install -y redis-server)")
	}
	for _, replicas := range []int{1, 3} {
		var progress bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		rep, err := Run(ctx, "drill", Options{Binary: bin, Quick: true, Out: &progress, WorkDir: t.TempDir(), Drill: DrillPromptRevert, Replicas: replicas})
		cancel()
		if err != nil {
			t.Fatalf("Run(drill prompt-revert, %d replicas): %v\nprogress:\n%s", replicas, err, progress.String())
		}
		checkReportShape(t, rep, "drill")
		for _, c := range rep.Failed(CheckInvariant) {
			t.Errorf("%d replicas: invariant failed: %s = %v (want %s)", replicas, c.Name, c.Value, c.Target)
		}
		logReportIfFailed(t, rep)
	}
	if _, err := Run(context.Background(), "drill", Options{Binary: bin, Quick: true, WorkDir: t.TempDir(), Drill: "nope"}); err == nil {
		t.Errorf("an unknown drill scenario ran")
	}
}
