package proxy

import "github.com/cairnhq/cairn/configs"

// adminStateView is the body of GET /admin/state: the live state, and the
// address the API listener is bound to, so that a tool given only the
// admin URL can reach the gateway itself (`cairn replay FILE --admin URL`,
// issue 14.6). Incident snapshots keep configs.State alone.
type adminStateView struct {
	configs.State
	// Listen is the API listener's bound address ("127.0.0.1:8080"), or
	// the configured one before Serve.
	Listen string `json:"listen"`
}

func (g *Gateway) adminState() adminStateView {
	tbl := g.live.Load()
	v := adminStateView{State: tbl.State(), Listen: tbl.Config().Listen}
	if a := g.apiAddr.Load(); a != nil {
		v.Listen = *a
	}
	return v
}
