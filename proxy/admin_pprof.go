package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// maxProfileSeconds bounds GET /debug/pprof/profile?seconds= and
// /debug/pprof/trace?seconds=: the runtime takes one CPU profile at a
// time, and a forgotten hour-long one would refuse every later one.
const maxProfileSeconds = 120

// servePprof serves the Go runtime's profiles (net/http/pprof's
// endpoints) on the admin listener, behind the admin token: a CPU profile
// of the running gateway under its real load is how its hot path is
// measured (issue 15). /debug/pprof/cmdline is not served: the command
// line is none of a profiler's business and may name paths.
func (g *Gateway) servePprof(ctx *fasthttp.RequestCtx, path string) {
	switch path {
	case "/debug/pprof/cmdline":
		adminError(ctx, fasthttp.StatusNotFound, "not found")
		return
	case "/debug/pprof/profile", "/debug/pprof/trace":
		if s := ctx.QueryArgs().Peek("seconds"); len(s) > 0 {
			n, err := strconv.Atoi(string(s))
			if err != nil || n <= 0 || n > maxProfileSeconds {
				adminError(ctx, fasthttp.StatusBadRequest, "seconds: a whole number from 1 to "+strconv.Itoa(maxProfileSeconds))
				return
			}
		}
	}
	pprofhandler.PprofHandler(ctx)
}
