package proxy

import (
	"encoding/json"

	"github.com/valyala/fasthttp"
)

// evidence is the evidence part of /readyz: whether every record,
// incident and audit entry is being kept. It is not a reason to take the
// gateway out of rotation (it still serves), so /readyz stays 200 while
// ready and says "degraded" here.
type evidence struct {
	Status string `json:"status"` // ok | degraded
	// Capture is the capture writer's health and accounting.
	Capture any `json:"capture"`
	// IncidentsUnsaved and AuditUnsaved count incident versions and audit
	// entries held in memory while the disk refuses them (retried).
	IncidentsUnsaved int `json:"incidents_unsaved"`
	AuditUnsaved     int `json:"audit_unsaved"`
	// IdleClosed counts connections closed without a request line (no
	// capture record).
	IdleClosed int64 `json:"idle_connections_closed"`
}

func (g *Gateway) evidence() evidence {
	h := g.capture.Health()
	e := evidence{Status: "ok", Capture: h, IncidentsUnsaved: g.incidents.Unsaved(), AuditUnsaved: g.audit.Unsaved(),
		IdleClosed: g.idleClosed.Load()}
	if !h.OK || e.IncidentsUnsaved > 0 || e.AuditUnsaved > 0 {
		e.Status = "degraded"
	}
	return e
}

// serveReady answers /readyz: 503 while starting or draining, else 200 with
// the evidence health.
func (g *Gateway) serveReady(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	status := "ready"
	if g.stopping.Load() || !g.started.Load() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		status = "not ready"
	}
	overrides := "applied"
	if !g.live.Ready() {
		// A replica serves nothing rolled back again (issue 17): it
		// turns ready once the fleet's overrides are applied.
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		status, overrides = "not ready", "not yet read from their store"
	}
	b, _ := json.Marshal(map[string]any{"status": status, "overrides": overrides, "evidence": g.evidence()})
	ctx.SetBody(b)
}
