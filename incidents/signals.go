package incidents

import "github.com/cairnhq/cairn/configs"

// Issue 16.4: the signals as a table. Each row says what the detector and
// the texts need to know of a signal: its name, the unit of its values,
// how its severity is judged, and its two-level threshold from the
// detection config with its default. A new signal adds its index to the
// const block in detect.go and a row here; its evaluation goes in a file
// of its own (signal_eval.go is one).

// signalKind says how a signal's value is compared with its threshold
// levels, for the severity it reached.
type signalKind int

const (
	// kindRate: a share of the window's requests, against each level.
	kindRate signalKind = iota
	// kindRatio: the window's value against level × its baseline.
	kindRatio
	// kindDrop: a mean score's fall below its baseline, in points of the
	// eval scale, against each level.
	kindDrop
	// kindShift: a rate's move away from its baseline, either way, in
	// points (hundredths), against each level (refusal_rate).
	kindShift
	// kindLeak: a rate strictly above each level, where a zero page level
	// is set (pii_leak_rate: page on any sustained leak).
	kindLeak
)

// signalSpec is one row of the signal table.
type signalSpec struct {
	name string
	unit string // Trigger.Unit
	kind signalKind
	// threshold returns the signal's levels in d, or def when d sets none.
	threshold func(d *configs.Detection) configs.Threshold
	def       configs.Threshold
}

// signalTable holds every detected signal, by index. It is a constant
// table: nothing writes it.
var signalTable = [nSignals]signalSpec{
	sigContract: {SignalContractFailureRate, "fraction", kindRate,
		func(d *configs.Detection) configs.Threshold { return d.ContractFailureRate }, configs.Threshold{Page: 0.1}},
	sig429: {SignalUpstream429Rate, "fraction", kindRate,
		func(d *configs.Detection) configs.Threshold { return d.Upstream429Rate }, configs.Threshold{Page: 0.5}},
	sigError: {SignalErrorRate, "fraction", kindRate,
		func(d *configs.Detection) configs.Threshold { return d.ErrorRate }, configs.Threshold{Page: 0.2}},
	sigLatency: {SignalLatencyP99, "ms", kindRatio,
		func(d *configs.Detection) configs.Threshold { return d.LatencyP99Ratio }, configs.Threshold{Page: 2}},
	sigTokens: {SignalTokensPerSuccess, "tokens", kindRatio,
		func(d *configs.Detection) configs.Threshold { return d.TokensPerSuccessRatio }, configs.Threshold{Page: 1.3}},
	sigCost: {SignalCostPerSuccess, "usd", kindRatio,
		func(d *configs.Detection) configs.Threshold { return d.CostPerSuccessRatio }, configs.Threshold{Investigate: 1.3, Page: 1.5}},
	sigEval: {SignalEvalDrift, "score", kindDrop,
		func(d *configs.Detection) configs.Threshold { return d.Eval.DropPoints }, configs.Threshold{Investigate: 2, Page: 5}},
	sigRefusal: {SignalRefusalRate, "fraction", kindShift,
		func(d *configs.Detection) configs.Threshold { return d.RefusalRatePoints },
		configs.Threshold{Investigate: configs.DefaultRefusalInvestigatePoints, Page: configs.DefaultRefusalPagePoints}},
	// The zero threshold is pii_leak_rate's default: page on any
	// sustained leak (see minLeaks).
	sigPII: {SignalPIILeakRate, "fraction", kindLeak,
		func(d *configs.Detection) configs.Threshold { return d.PIILeakRate }, configs.Threshold{}},
}

// thresholds returns every signal's levels from d, defaults applied.
func thresholds(d *configs.Detection) (t [nSignals]configs.Threshold) {
	for sig, s := range signalTable {
		if t[sig] = s.threshold(d); t[sig] == (configs.Threshold{}) {
			t[sig] = s.def
		}
	}
	return t
}

func signalName(sig int) string {
	if sig >= 0 && sig < nSignals {
		return signalTable[sig].name
	}
	return SignalDeclared
}

func signalUnit(sig int) string {
	if sig >= 0 && sig < nSignals {
		return signalTable[sig].unit
	}
	return "fraction"
}
