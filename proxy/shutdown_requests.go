package proxy

// cutUpstreamCalls ends, at the drain deadline, every upstream call still
// running: streams are cut first (each ends with its server_shutting_down
// event), then every upstream connection is closed, and any dialed from
// now on, so that a request waiting for its upstream's answer (buffered,
// or a stream before its headers) returns at once. forward answers such a
// request errCutAtDrain (503 server_shutting_down) and its record has
// outcome shutdown, written before capture closes; no fallback is tried
// and the target's health is not charged. It returns how many connections
// it closed.
func (g *Gateway) cutUpstreamCalls() int {
	g.pastDrain.Store(true)
	g.cutStreams()
	n := 0
	for _, up := range *g.upstreams.Load() {
		n += up.conns.closeAll()
	}
	return n
}
