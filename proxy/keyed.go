package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/routing"
)

// keyed takes one snapshot of the route table and authenticates the
// request's key against its config (x.cfg), noting the key's name on the
// record: one table for the key, the route and the key's allow-list, so
// that a reload between them cannot judge a key of one config on a route
// of another. It serves admit and the endpoints that do not admit a body
// (retrieving a model, a stored response).
func (g *Gateway) keyed(ctx *fasthttp.RequestCtx, x *exchange) (*routing.Table, *configs.Key, *StatusError) {
	tbl := g.live.Load()
	x.cfg = tbl.Config()
	key, se := authenticate(x.cfg, &ctx.Request.Header)
	if se != nil {
		return tbl, nil, se
	}
	if key != nil {
		x.rec.Key = key.Name
	}
	return tbl, key, nil
}
