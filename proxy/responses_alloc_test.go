//go:build !race

package proxy

import "testing"

// TestResponsesRelayAllocsPerEvent: relaying a Responses stream costs no
// allocation per event: the allocations of a 2,048-event stream are those
// of a 64-event one plus the growth of the accumulated text (the events'
// own bytes, amortised), as for a chat stream (issue 19).
func TestResponsesRelayAllocsPerEvent(t *testing.T) {
	g := relayGateway()
	buf := make([]byte, streamBufSize)
	out := make([]byte, 0, 64<<10)
	for _, tc := range []struct {
		name   string
		ep     endpoint
		stream func(int) []byte
	}{
		{"chat", epChat, chatStream},
		{"responses", epResponses, responsesStream},
	} {
		small, large := tc.stream(64), tc.stream(2048)
		a := testing.AllocsPerRun(20, func() { relayOnce(g, tc.ep, small, &buf, out) })
		b := testing.AllocsPerRun(20, func() { relayOnce(g, tc.ep, large, &buf, out) })
		perEvent := (b - a) / (2048 - 64)
		t.Logf("%s: %.0f allocs for 64 events, %.0f for 2048: %.4f per event", tc.name, a, b, perEvent)
		if perEvent > 0.02 {
			t.Errorf("%s: %.4f allocations per streamed event; want none beyond the text's amortised growth", tc.name, perEvent)
		}
	}
}
