package loadtest

import (
	"bytes"
	"testing"
)

// checkInvariants fails t for every invariant the report says failed.
func checkInvariants(t *testing.T, rep *Report) {
	t.Helper()
	for _, c := range rep.Failed(CheckInvariant) {
		t.Errorf("invariant failed: %s = %v (want %s)", c.Name, c.Value, c.Target)
	}
}

// logReportIfFailed logs the report's table when t has failed, to show
// the figures behind the failure.
func logReportIfFailed(t *testing.T, rep *Report) {
	t.Helper()
	if t.Failed() {
		var buf bytes.Buffer
		rep.WriteTable(&buf) //nolint:errcheck // diagnostics only
		t.Logf("report:\n%s", buf.String())
	}
}
