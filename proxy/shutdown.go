package proxy

import (
	"time"
)

// trackStream registers a relayed stream so that shutdown can end it at
// the drain deadline.
func (g *Gateway) trackStream(s *streamRelay) {
	g.relaysMu.Lock()
	if g.relays == nil {
		g.relays = make(map[*streamRelay]struct{})
	}
	g.relays[s] = struct{}{}
	cut := g.cutting
	g.relaysMu.Unlock()
	if cut {
		g.cutStream(s)
	}
}

func (g *Gateway) untrackStream(s *streamRelay) {
	g.relaysMu.Lock()
	delete(g.relays, s)
	g.relaysMu.Unlock()
}

// cutStreams ends every stream still relayed: each gets a terminal
// server_shutting_down SSE error event and a record with outcome shutdown
// (written by its relay, which returns once its upstream read fails). It
// returns how many it cut.
func (g *Gateway) cutStreams() int {
	g.relaysMu.Lock()
	g.cutting = true
	list := make([]*streamRelay, 0, len(g.relays))
	for s := range g.relays {
		list = append(list, s)
	}
	g.relaysMu.Unlock()
	for _, s := range list {
		g.cutStream(s)
	}
	return len(list)
}

func (g *Gateway) cutStream(s *streamRelay) {
	if !s.cut.CompareAndSwap(false, true) {
		return
	}
	// Closing the upstream connection makes the relay's blocked read
	// return at once; the relay then writes the event and the record.
	if s.dc != nil {
		_ = s.dc.Close()
	} else {
		// No registered connection: wake the read by a past deadline.
		if c, ok := s.r.(interface{ SetReadDeadline(time.Time) error }); ok {
			_ = c.SetReadDeadline(time.Unix(1, 0))
		}
	}
}
