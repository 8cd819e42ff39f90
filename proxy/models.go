package proxy

import (
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/internal/jsonstr"
)

// retrieveModel answers GET /v1/models/{id} (the SDKs' models.retrieve)
// from the route table: a model the gateway would route (a route's name,
// or a name its globs match) and the key may use is an OpenAI model
// object; anything else is OpenAI's 404 model_not_found (issue 14.5).
func (g *Gateway) retrieveModel(ctx *fasthttp.RequestCtx, id string) {
	x := g.begin(ctx, epModels)
	defer g.finish(x)
	if !ctx.IsGet() {
		g.fail(ctx, x, errMethod)
		return
	}
	tbl, key, se := g.keyed(ctx, x)
	if se != nil {
		g.fail(ctx, x, se)
		return
	}
	x.rec.RequestedModel = clip([]byte(id), 256)
	r := tbl.Match(id)
	if r == nil || (key != nil && !key.Allows(r.Name)) {
		se := statusErr(fasthttp.StatusNotFound, "invalid_request_error", "model_not_found", capture.OutcomeNotFound,
			fmt.Sprintf("the model %q does not exist or you do not have access to it", x.rec.RequestedModel))
		se.Param = "model"
		g.fail(ctx, x, se)
		return
	}
	x.rec.Route = r.Name
	buf := make([]byte, 0, 128)
	buf = append(buf, `{"id":`...)
	buf = jsonstr.Append(buf, id)
	buf = append(buf, `,"object":"model","created":`...)
	buf = strconv.AppendInt(buf, x.start.Unix(), 10)
	buf = append(buf, `,"owned_by":"cairn"}`...)
	ctx.Response.Header.Set("x-cairn-route", r.Name)
	ctx.SetContentType("application/json")
	ctx.SetBody(buf)
	x.rec.Status = fasthttp.StatusOK
}
