package proxy

import (
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/incidents"
)

// resolveIncident answers POST /admin/incidents/{id}/resolve with
// {"reason": "...", "actor": "..."}: the incident is resolved by hand and
// the audit log says who and why (issue 18: the console's resolve button).
func (g *Gateway) resolveIncident(ctx *fasthttp.RequestCtx, id string) {
	in, ok := g.readMitigation(ctx, `{"reason": "...", "actor": "..."}`)
	if !ok {
		return
	}
	inc, err := g.incidents.Resolve(id, in.Actor, in.Reason)
	switch {
	case errors.Is(err, incidents.ErrNotFound):
		adminError(ctx, fasthttp.StatusNotFound, "no incident "+id)
	case errors.Is(err, incidents.ErrAlreadyResolved):
		adminError(ctx, fasthttp.StatusConflict, "incident "+id+" is already resolved")
	case err != nil:
		adminError(ctx, fasthttp.StatusInternalServerError, err.Error())
	default:
		g.log.Info("incident resolved by hand", "incident", id, "actor", in.Actor)
		writeJSON(ctx, fasthttp.StatusOK, inc)
	}
}
