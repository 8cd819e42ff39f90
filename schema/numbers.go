package schema

import (
	"math"
	"strconv"

	"github.com/tidwall/gjson"
)

// numParam is the range OpenAI accepts for one numeric request parameter.
// A value outside it, or one that is not finite (gjson reads 1e999 as
// +Inf), is refused with 400 before anything records it: issue 12.2, where
// "temperature": 1e999 became a record no JSON encoder could write.
type numParam struct {
	lo, hi  float64
	integer bool
}

// numParams are the numeric chat parameters the gateway checks. The
// ranges are OpenAI's, so a client gets the answer it would get there,
// just without an upstream round trip.
var numParams = map[string]numParam{
	"temperature":       {lo: 0, hi: 2},
	"top_p":             {lo: 0, hi: 1},
	"frequency_penalty": {lo: -2, hi: 2},
	"presence_penalty":  {lo: -2, hi: 2},
	"n":                 {lo: 1, hi: 128, integer: true},
	"top_logprobs":      {lo: 0, hi: 20, integer: true},
	"seed":              {lo: math.MinInt64, hi: math.MaxInt64, integer: true},
}

// completionsNumParams are the numeric parameters of a legacy
// /v1/completions request, with OpenAI's ranges.
var completionsNumParams = map[string]numParam{
	"temperature":       {lo: 0, hi: 2},
	"top_p":             {lo: 0, hi: 1},
	"frequency_penalty": {lo: -2, hi: 2},
	"presence_penalty":  {lo: -2, hi: 2},
	"n":                 {lo: 1, hi: 128, integer: true},
	"best_of":           {lo: math.MinInt64, hi: math.MaxInt64, integer: true},
	"logprobs":          {lo: 0, hi: 5, integer: true},
	"seed":              {lo: math.MinInt64, hi: math.MaxInt64, integer: true},
}

// embeddingsNumParams are those of an embeddings request.
var embeddingsNumParams = map[string]numParam{
	"dimensions": {lo: 1, hi: 1 << 16, integer: true},
}

// checkNumber checks v, the value of the numeric parameter param: null is
// absent; anything else must be a finite number in range. It returns the
// value and whether it was present.
func checkNumber(param string, p numParam, v gjson.Result) (float64, bool, *RequestError) {
	switch v.Type {
	case gjson.Null:
		return 0, false, nil
	case gjson.Number:
	default:
		want := "a number"
		if p.integer {
			want = "an integer"
		}
		return 0, false, badType(param, want, v)
	}
	x := v.Num
	switch {
	case math.IsInf(x, 0) || math.IsNaN(x):
		return 0, false, reqErr(param, "invalid '"+param+"': the number is too large to be represented; expected "+rangeText(p))
	case x < p.lo || x > p.hi || p.integer && x != math.Trunc(x):
		return 0, false, reqErr(param, "invalid '"+param+"': expected "+rangeText(p))
	}
	return x, true, nil
}

func rangeText(p numParam) string {
	kind := "a number"
	if p.integer {
		kind = "an integer"
	}
	if p.lo == math.MinInt64 {
		return kind + " that fits in 64 bits"
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return kind + " between " + f(p.lo) + " and " + f(p.hi)
}
