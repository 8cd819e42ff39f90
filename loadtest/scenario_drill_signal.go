package loadtest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// drillSignal is what the drill injects on the canary and how a client
// recognises a degraded answer, per signal (`cairn loadtest drill --signal`).
type drillSignal struct {
	name  string
	fault Fault
	// what the canary starts doing, for the report.
	what string
	// judge reports whether a 200 answer is degraded; nil: only errors
	// and contract failures are (the default drill).
	judge func(body []byte) bool
	// noContract drops the route's schema: a refusal is no JSON, and the
	// drill measures its own signal, not the contract's.
	noContract bool
}

// drillSignals are the signals the drill knows besides the default
// (contract_failure_rate: the canary returns broken JSON).
func drillSignals() map[string]drillSignal {
	return map[string]drillSignal{
		"refusal_rate": {
			name: "refusal_rate", fault: Fault{Refuse: true, Variant: -1}, what: "refuses (a refusal phrase, or finish_reason content_filter)",
			judge: func(b []byte) bool {
				return bytes.Contains(b, []byte(`"content_filter"`)) || bytes.Contains(b, []byte("I'm sorry, but I can't"))
			},
			noContract: true,
		},
		"pii_leak_rate": {
			name: "pii_leak_rate", fault: Fault{LeakPII: true}, what: "leaks an email address and a phone number the request did not hold",
			judge:      func(b []byte) bool { return bytes.Contains(b, []byte(MockLeakedEmail)) },
			noContract: true,
		},
	}
}

// DrillSignals lists the values of `cairn loadtest drill --signal`.
func DrillSignals() []string {
	names := []string{"contract_failure_rate", SignalEvalDrift}
	for n := range drillSignals() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// drillSignalFor returns the drill's setup for signal ("" or
// contract_failure_rate: the default broken-JSON drill).
func drillSignalFor(signal string) (drillSignal, error) {
	switch signal {
	case "", "contract_failure_rate":
		return drillSignal{name: "contract_failure_rate", fault: Fault{BrokenJSON: true}, what: "returns broken JSON"}, nil
	}
	s, ok := drillSignals()[signal]
	if !ok {
		return drillSignal{}, fmt.Errorf("loadtest drill: unknown signal %q (want one of %s)", signal, strings.Join(DrillSignals(), ", "))
	}
	return s, nil
}
