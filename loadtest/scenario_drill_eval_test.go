package loadtest

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// Issue 16.5: `drill --signal eval_drift` in the quick profile against the
// real binary: a judge posts scores beside the load, the canary answers
// worse, eval_drift opens one incident on it and it is rolled back; every
// invariant holds.
func TestEvalDrillSmoke(t *testing.T) {
	bin := buildCairn(t)
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Run(ctx, "drill", Options{Binary: bin, Quick: true, Seconds: 2, Signal: SignalEvalDrift, Out: &progress, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Run(drill eval_drift): %v\nprogress:\n%s", err, progress.String())
	}
	checkReportShape(t, rep, "drill")
	checkInvariants(t, rep)
	logReportIfFailed(t, rep)
	if _, err := Run(ctx, "drill", Options{Binary: bin, Signal: "nope"}); err == nil {
		t.Errorf("drill --signal nope ran; want an error naming the signals")
	}
}
