package loadtest

import (
	"slices"
	"testing"
)

// One --signal flag for every drill: the list the CLI validates against
// and prints names each of them, and each resolves (eval_drift runs its
// own drill; the others a drillSignal).
func TestDrillSignalsListEveryDrill(t *testing.T) {
	want := []string{"contract_failure_rate", SignalEvalDrift, "pii_leak_rate", "refusal_rate"}
	slices.Sort(want)
	if got := DrillSignals(); !slices.Equal(got, want) {
		t.Fatalf("DrillSignals() = %q; want %q", got, want)
	}
	for _, s := range want {
		if s == SignalEvalDrift {
			continue
		}
		if _, err := drillSignalFor(s); err != nil {
			t.Errorf("drillSignalFor(%q): %v", s, err)
		}
	}
	if _, err := drillSignalFor("latency_p99"); err == nil {
		t.Error("drillSignalFor accepts a signal no drill breaks")
	}
}
