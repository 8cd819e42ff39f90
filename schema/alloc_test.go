//go:build !race

package schema

import "testing"

// Allocation budgets of the hot path (STYLE §7). The race detector changes
// allocation counts, so these run only without it.
func TestAllocationBudgets(t *testing.T) {
	body := typicalChatBody()
	dst := make([]byte, 0, 2*len(body))
	stream := typicalStream(20)
	var p SSEParser
	nop := func(Event) error { return nil }
	_ = p.Feed(stream, nop) // warm the buffers
	reply := typicalReply()
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		// Model and user are copied out of the body; one escaped string.
		{"ParseChatRequest", 3, func() { sinkReq, _ = ParseChatRequest(body) }},
		{"RewriteRequest", 0, func() { sinkBytes, _ = RewriteRequest(dst[:0], body, "gpt-4o-mini", "system", true) }},
		{"SSEParser.Feed", 0, func() { _ = p.Feed(stream, nop) }},
		{"ReadUsage", 0, func() { _, _ = ReadUsage(stream[len(stream)-200:]) }},
		{"IsUsageOnlyChunk", 0, func() { _ = IsUsageOnlyChunk(stream) }},
		{"CheckMessage without contract", 0, func() { sinkVerdict = (Contract{}).CheckMessage(reply) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n > tt.max {
			t.Errorf("%s: %v allocs/op; budget %v", tt.name, n, tt.max)
		}
	}
}
