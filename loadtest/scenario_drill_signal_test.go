package loadtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDrillGuardrailSignals runs the drill for each guardrail signal in
// the quick profile: the canary starts refusing or leaking, and the one
// incident it opens is that signal's, rolled back with nothing degraded
// after the rollback.
func TestDrillGuardrailSignals(t *testing.T) {
	bin := buildCairn(t)
	for _, sig := range []string{"refusal_rate", "pii_leak_rate"} {
		t.Run(sig, func(t *testing.T) {
			var progress bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			rep, err := Run(ctx, "drill", Options{Binary: bin, Quick: true, Seconds: 1, Out: &progress, WorkDir: t.TempDir(), Signal: sig})
			if err != nil {
				t.Fatalf("Run(drill --signal %s): %v\nprogress:\n%s", sig, err, progress.String())
			}
			checkInvariants(t, rep)
			if !strings.Contains(rep.Tables[0].Title, sig) {
				t.Errorf("timing table %q does not name the signal", rep.Tables[0].Title)
			}
			logReportIfFailed(t, rep)
		})
	}
	if _, err := Run(context.Background(), "drill", Options{Binary: bin, Signal: "nope", WorkDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), `unknown signal "nope"`) {
		t.Errorf("unknown signal: err = %v", err)
	}
}
