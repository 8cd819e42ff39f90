package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/incidents"
	"github.com/cairnhq/cairn/proxy/console"
	"github.com/cairnhq/cairn/routing"
)

// serveAdmin is the admin listener: health, metrics, live state, reload,
// audit, request lookup, incidents and rollback. With admin_token_env set,
// every path but /healthz and /readyz needs 'Authorization: Bearer <token>'.
func (g *Gateway) serveAdmin(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch path {
	case "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
		return
	case "/readyz":
		g.serveReady(ctx)
		return
	}
	if path == "/ui" || strings.HasPrefix(path, "/ui/") {
		// The console's static files carry no data: they load without
		// the token and ask for it (issue 18).
		console.Serve(ctx, path)
		return
	}
	if !g.adminAuthorized(ctx) {
		ctx.Response.Header.Set("www-authenticate", `Bearer realm="cairn-admin"`)
		adminError(ctx, fasthttp.StatusUnauthorized, "missing or wrong admin token")
		return
	}
	get, post := ctx.IsGet(), ctx.IsPost()
	switch {
	case path == "/metrics" && get:
		g.writeMetrics(ctx)
	case strings.HasPrefix(path, "/debug/pprof/") && get:
		g.servePprof(ctx, path)
	case path == "/admin/state" && get:
		writeJSON(ctx, fasthttp.StatusOK, g.adminState())
	case path == "/admin/reload" && post:
		st, changes, err := g.Reload("admin")
		if err != nil {
			adminErrorList(ctx, fasthttp.StatusUnprocessableEntity, "config refused; the running config stays", err)
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"config_revision": st.Revision, "changes": changes})
	case path == "/admin/audit" && get:
		since := time.Time{}
		if s := string(ctx.QueryArgs().Peek("since")); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				adminError(ctx, fasthttp.StatusBadRequest, "since: not an RFC 3339 time")
				return
			}
			since = t
		}
		writeJSON(ctx, fasthttp.StatusOK, nonNil(g.audit.List(since)))
	case strings.HasPrefix(path, "/admin/requests/") && get:
		id := strings.TrimPrefix(path, "/admin/requests/")
		c, cancel := context.WithTimeout(g.baseCtx, 5*time.Second)
		defer cancel()
		// Gateway IDs resolve first, then provider IDs, then client IDs;
		// a client ID several records carry lists them (issue 12.12).
		m, err := g.capture.Find(c, id)
		if errors.Is(err, capture.ErrNotFound) {
			adminError(ctx, fasthttp.StatusNotFound, "no record with that request ID")
			return
		}
		if err != nil {
			adminError(ctx, fasthttp.StatusInternalServerError, "lookup failed: "+err.Error())
			return
		}
		ctx.Response.Header.Set("x-cairn-id-kind", m.Kind)
		writeJSON(ctx, fasthttp.StatusOK, m.Body())
	case path == "/admin/scores" && post:
		g.postScores(ctx)
	case path == "/admin/signals" && get:
		writeJSON(ctx, fasthttp.StatusOK, nonNil(g.incidents.Signals()))
	case path == "/admin/incidents" && get:
		writeJSON(ctx, fasthttp.StatusOK, nonNil(g.incidents.List()))
	case path == "/admin/incidents" && post:
		var in struct {
			Route  string `json:"route"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &in); err != nil || in.Route == "" {
			adminError(ctx, fasthttp.StatusBadRequest, `body must be {"route": "...", "reason": "..."}`)
			return
		}
		// The reason is free text an operator typed: it may quote a
		// customer's email or phone (issue 12.14). It is stored, logged
		// and sent to webhooks only masked.
		inc, err := g.incidents.Declare(in.Route, g.scrubText(in.Reason))
		if err != nil {
			adminError(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		writeJSON(ctx, fasthttp.StatusCreated, inc)
	case strings.HasPrefix(path, "/admin/incidents/") && strings.HasSuffix(path, "/resolve") && post:
		g.resolveIncident(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/admin/incidents/"), "/resolve"))
	case strings.HasPrefix(path, "/admin/incidents/") && get:
		rest := strings.TrimPrefix(path, "/admin/incidents/")
		id, sub, _ := strings.Cut(rest, "/")
		inc, err := g.incidents.View(id) // read-only: shared when decoded from disk
		if err != nil {
			adminError(ctx, fasthttp.StatusNotFound, "no incident "+id)
			return
		}
		switch sub {
		case "":
			b, err := g.incidents.ViewJSON(id)
			if err != nil {
				adminError(ctx, fasthttp.StatusInternalServerError, err.Error())
				return
			}
			ctx.SetContentType("application/json")
			ctx.SetBody(b)
		case "postmortem":
			ctx.SetContentType("text/markdown; charset=utf-8")
			ctx.SetBodyString(incidents.RenderPostmortem(inc))
		case "chart.svg":
			g.serveChart(ctx, inc)
		default:
			adminError(ctx, fasthttp.StatusNotFound, "unknown path")
		}
	case path == "/admin/routes" || strings.HasPrefix(path, "/admin/routes/"):
		g.serveRoutes(ctx, strings.TrimPrefix(path, "/admin/routes"))
	default:
		adminError(ctx, fasthttp.StatusNotFound, "unknown admin path or method")
	}
}

func (g *Gateway) adminAuthorized(ctx *fasthttp.RequestCtx) bool {
	tok := g.live.Load().Config().AdminToken
	if tok == "" {
		return true
	}
	auth := ctx.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(string(auth[:len(prefix)]), prefix) {
		return false
	}
	a := sha256.Sum256(auth[len(prefix):])
	b := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (g *Gateway) writeMetrics(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	w := ctx.Response.BodyWriter()
	g.metrics.WritePrometheus(w)
	g.limiter.WritePrometheus(w)
	g.respState.writePrometheus(w)
	fmt.Fprintf(w, "# HELP go_goroutines Goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
	g.writeMemoryMetrics(w)
	fmt.Fprintf(w, "# HELP cairn_streams_open Streams being relayed now.\n# TYPE cairn_streams_open gauge\ncairn_streams_open %d\n", g.streamsOpen.Load())
	fmt.Fprintf(w, "# HELP cairn_ratelimit_charges_pending Token charges queued for Redis or in flight.\n# TYPE cairn_ratelimit_charges_pending gauge\ncairn_ratelimit_charges_pending %d\n", g.chargesPending.Load())
	fmt.Fprintf(w, "# HELP cairn_ratelimit_charges_dropped_total Token charges dropped because the charge queue was full.\n# TYPE cairn_ratelimit_charges_dropped_total counter\ncairn_ratelimit_charges_dropped_total %d\n", g.chargeDropped.Load())
	fmt.Fprintf(w, "# HELP cairn_requests_begun_total Requests that got a gateway request ID; each yields one capture record.\n# TYPE cairn_requests_begun_total counter\ncairn_requests_begun_total %d\n", g.recordsBegun.Load())
	fmt.Fprintf(w, "# HELP cairn_capture_records_open Requests whose record is not yet handed to capture (in flight, streams): begun = open + cairn_capture_admitted_total.\n# TYPE cairn_capture_records_open gauge\ncairn_capture_records_open %d\n", g.recordsOpen.Load())
	fmt.Fprintf(w, "# HELP cairn_idle_connections_closed_total Connections closed without a capture record because they never sent a request line.\n# TYPE cairn_idle_connections_closed_total counter\ncairn_idle_connections_closed_total %d\n", g.idleClosed.Load())
	fmt.Fprintf(w, "# HELP cairn_config_reloads_total Config reloads applied.\n# TYPE cairn_config_reloads_total counter\ncairn_config_reloads_total %d\n", g.reloads.Load())
	fmt.Fprintf(w, "# HELP cairn_config_reload_errors_total Config reloads refused.\n# TYPE cairn_config_reload_errors_total counter\ncairn_config_reload_errors_total %d\n", g.reloadErrors.Load())
	fmt.Fprintf(w, "# HELP cairn_inflight_requests Requests holding a concurrency slot.\n# TYPE cairn_inflight_requests gauge\ncairn_inflight_requests %d\n", len(g.sem))
	fmt.Fprintf(w, "# HELP cairn_target_circuit_open Targets whose circuit is open (1) or not (0).\n# TYPE cairn_target_circuit_open gauge\n")
	for _, r := range g.live.Load().Routes() {
		// A target that is also a fallback is one series (issue 20: a
		// repeated series makes Prometheus drop samples of the scrape); its
		// circuit counts as open when either entry's is.
		ts := append(append([]*routing.Target(nil), r.Targets...), r.Fallbacks...)
		for i, t := range ts {
			name, open, first := t.Provider.Name+"/"+t.Model, 0, true
			for j, u := range ts {
				if u.Provider.Name+"/"+u.Model != name {
					continue
				}
				if j < i {
					first = false
				}
				if u.Health.State() != "closed" {
					open = 1
				}
			}
			if first {
				fmt.Fprintf(w, "cairn_target_circuit_open{route=%q,target=%q} %d\n", r.Name, name, open)
			}
		}
	}
	g.writeUpstreamMetrics(w)
	g.writeOverrideMetrics(w)
	g.tracing.WritePrometheus(w)
	g.writeIncidentMetrics(w)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		adminError(ctx, fasthttp.StatusInternalServerError, "encode: "+err.Error())
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

func adminError(ctx *fasthttp.RequestCtx, status int, msg string) {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
	ctx.SetBody(b)
}

func adminErrorList(ctx *fasthttp.RequestCtx, status int, msg string, err error) {
	var list []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			list = append(list, e.Error())
		}
	} else {
		list = []string{err.Error()}
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": "config_invalid", "errors": list}})
	ctx.SetBody(b)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
