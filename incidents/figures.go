package incidents

import (
	"math"
	"strconv"
)

// Issue 18: every figure Cairn writes is rounded one way, in the
// postmortem, the incident texts and the console (app.js has the same
// rules): a share as a percentage with at most one decimal (pct), a
// latency in whole milliseconds, tokens whole, and money by usd.

// usd formats an amount of US dollars: two decimals from $1, else three
// significant digits ($0.0123, $0.000150 → $0.00015), $0 for zero.
func usd(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "$0"
	}
	a := math.Abs(v)
	if a >= 1 {
		return "$" + strconv.FormatFloat(v, 'f', 2, 64)
	}
	dec := min(8, 2-int(math.Floor(math.Log10(a))))
	r := math.Round(v*math.Pow10(dec)) / math.Pow10(dec)
	return "$" + strconv.FormatFloat(r, 'f', -1, 64)
}
