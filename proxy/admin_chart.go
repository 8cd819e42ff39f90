package proxy

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/incidents"
)

// serveChart answers GET /admin/incidents/{id}/chart.svg: the incident's
// timeline chart drawn from this replica's capture records (issue 18).
func (g *Gateway) serveChart(ctx *fasthttp.RequestCtx, inc *incidents.Incident) {
	ch := incidents.NewChart(inc, g.now())
	c, cancel := context.WithTimeout(g.baseCtx, 10*time.Second)
	defer cancel()
	if err := g.capture.Between(c, ch.Period(), ch.Add); err != nil {
		adminError(ctx, fasthttp.StatusInternalServerError, "read capture records: "+err.Error())
		return
	}
	ctx.SetContentType("image/svg+xml; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if err := ch.WriteSVG(ctx.Response.BodyWriter()); err != nil {
		adminError(ctx, fasthttp.StatusInternalServerError, "draw chart: "+err.Error())
	}
}
