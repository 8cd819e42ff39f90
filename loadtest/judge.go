package loadtest

import (
	"math/rand/v2"
	"strings"
)

// DegradedContent is the reply of a mock with the Degrade fault: valid,
// polite and useless, the kind of answer a prompt regression produces.
const DegradedContent = "I'm not sure I can help with that. Could you rephrase your question?"

// Judge scores a chat answer on [0, 1] the way an online eval judge
// would, for drills and tests: a helpful answer scores around Good, a
// degraded one (DegradedContent) around Bad, each with ±Noise of uniform
// noise. It is safe for concurrent use when Rand is nil (the global
// source); a *rand.Rand is not.
type Judge struct {
	Good, Bad, Noise float64
	Rand             *rand.Rand
}

// DefaultJudge scores helpful answers 0.85 and degraded ones 0.70 (a
// 15-point drop), ±3 points.
func DefaultJudge() Judge { return Judge{Good: 0.85, Bad: 0.70, Noise: 0.03} }

// Score returns the judge's score of content.
func (j Judge) Score(content string) float64 {
	base := j.Good
	if strings.HasPrefix(content, DegradedContent[:20]) {
		base = j.Bad
	}
	u := rand.Float64()
	if j.Rand != nil {
		u = j.Rand.Float64()
	}
	return min(max(base+(u*2-1)*j.Noise, 0), 1)
}
