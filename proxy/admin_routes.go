package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/incidents"
	"github.com/cairnhq/cairn/routing"
)

// serveRoutes answers the admin API under /admin/routes (rest is the path
// after it): the route list, rollback, restore, and the prompt registry
// and revert (issue 17).
func (g *Gateway) serveRoutes(ctx *fasthttp.RequestCtx, rest string) {
	get, post := ctx.IsGet(), ctx.IsPost()
	if rest == "" || rest == "/" {
		if !get {
			adminError(ctx, fasthttp.StatusMethodNotAllowed, "GET /admin/routes lists the routes")
			return
		}
		g.listRoutes(ctx)
		return
	}
	route, action, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case action == "rollback" && post:
		g.manualRollback(ctx, route)
	case action == "restore" && post:
		g.restoreOverride(ctx, route)
	case action == "prompts" && get:
		g.listPrompts(ctx, route)
	case action == "prompt/revert" && post:
		g.revertPrompt(ctx, route)
	default:
		adminError(ctx, fasthttp.StatusNotFound, "unknown admin path or method")
	}
}

// routeSummary is one row of GET /admin/routes.
type routeSummary struct {
	Name             string                `json:"name"`
	Prompt           configs.Prompt        `json:"prompt"`
	ConfiguredPrompt *configs.Prompt       `json:"configured_prompt,omitempty"`
	Cohorts          []string              `json:"live_cohorts"`
	RolledBack       []string              `json:"rolled_back,omitempty"`
	Targets          []configs.TargetState `json:"targets"`
	AutoRollback     bool                  `json:"auto_rollback"`
	AutoRevertPrompt bool                  `json:"auto_revert_prompt"`
	Overrides        []configs.Override    `json:"overrides"`
	Unapplied        []configs.Override    `json:"unapplied_overrides,omitempty"`
}

func (g *Gateway) listRoutes(ctx *fasthttp.RequestCtx) {
	t := g.live.Load()
	st := t.State()
	out := make([]routeSummary, 0, len(st.Routes))
	for _, rs := range st.Routes {
		rs.Prompt.System = "" // the list stays short; the prompts endpoint has the text
		cp := rs.ConfiguredPrompt
		if cp != nil {
			c := *cp
			c.System = ""
			cp = &c
		}
		auto := false
		if r := t.Route(rs.Name); r != nil {
			auto = r.Config.AutoRevertPrompt
		}
		out = append(out, routeSummary{Name: rs.Name, Prompt: rs.Prompt, ConfiguredPrompt: cp, Cohorts: nonNil(rs.Cohorts()),
			RolledBack: rs.RolledBack, Targets: rs.Targets, AutoRollback: rs.AutoRollback, AutoRevertPrompt: auto,
			Overrides: nonNil(rs.Overrides), Unapplied: rs.Unapplied})
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

// mitigationBody is the body of rollback, restore and revert.
type mitigationBody struct {
	Cohort string `json:"cohort"`
	What   string `json:"what"`
	To     string `json:"to"`
	Reason string `json:"reason"`
	// Actor names who acts (the CLI sends the operator's user name).
	Actor    string `json:"actor"`
	Incident string `json:"incident"`
}

func (g *Gateway) readMitigation(ctx *fasthttp.RequestCtx, shape string) (mitigationBody, bool) {
	var in mitigationBody
	if b := ctx.PostBody(); len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &in); err != nil {
			adminError(ctx, fasthttp.StatusBadRequest, "body must be "+shape)
			return in, false
		}
	}
	// Free text an operator typed may quote a customer (issue 12.14).
	in.Reason = g.scrubText(in.Reason)
	in.Actor = g.scrubText(in.Actor)
	if in.Actor == "" {
		in.Actor = "admin"
	}
	return in, true
}

func (g *Gateway) manualRollback(ctx *fasthttp.RequestCtx, route string) {
	in, ok := g.readMitigation(ctx, `{"cohort": "...", "reason": "..."}`)
	if !ok {
		return
	}
	st := g.live.Load().State()
	rs := st.Route(route)
	if rs == nil {
		adminError(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no route %q", route))
		return
	}
	if in.Cohort == "" {
		var candidates []string
		for _, c := range rs.Cohorts() {
			if c != configs.DefaultCohort {
				candidates = append(candidates, c)
			}
		}
		if len(candidates) != 1 {
			adminError(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("name the cohort to roll back; live cohorts: %v", rs.Cohorts()))
			return
		}
		in.Cohort = candidates[0]
	}
	before, after, o, err := g.live.Mitigate(configs.Override{Route: route, What: configs.OverrideCohort, Cohort: in.Cohort,
		Source: incidents.SourceRollbackManual, Actor: in.Actor, Reason: in.Reason, Incident: in.Incident})
	if err != nil {
		adminError(ctx, fasthttp.StatusConflict, err.Error())
		return
	}
	g.incidents.RecordRollback(route, in.Cohort, incidents.SourceRollbackManual, before, after)
	g.log.Info("manual rollback", "route", route, "cohort", in.Cohort, "actor", in.Actor)
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"route": route, "cohort": in.Cohort, "override": o, "state": after.Route(route)})
}

func (g *Gateway) restoreOverride(ctx *fasthttp.RequestCtx, route string) {
	in, ok := g.readMitigation(ctx, `{"what": "cohort"|"prompt", "cohort": "...", "reason": "..."}`)
	if !ok {
		return
	}
	if g.live.Load().Route(route) == nil {
		adminError(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no route %q", route))
		return
	}
	if in.What == "" && in.Cohort != "" {
		in.What = configs.OverrideCohort
	}
	if in.What == "" {
		// The route's only override, when it has exactly one.
		var mine []configs.Override
		for _, o := range g.live.Overrides() {
			if o.Route == route {
				mine = append(mine, o)
			}
		}
		if len(mine) != 1 {
			adminError(ctx, fasthttp.StatusBadRequest, fmt.Sprintf(`name the override to clear with "what" ("cohort" with "cohort", or "prompt"); route %q has %d`, route, len(mine)))
			return
		}
		in.What, in.Cohort = mine[0].What, mine[0].Cohort
	}
	if in.What != configs.OverrideCohort && in.What != configs.OverridePrompt {
		adminError(ctx, fasthttp.StatusBadRequest, `what: must be "cohort" or "prompt"`)
		return
	}
	if in.What == configs.OverrideCohort && in.Cohort == "" {
		adminError(ctx, fasthttp.StatusBadRequest, `cohort: name the cohort whose rollback to clear`)
		return
	}
	if in.What == configs.OverridePrompt {
		in.Cohort = ""
	}
	o, before, after, err := g.live.Restore(route, in.What, in.Cohort)
	if errors.Is(err, routing.ErrNoOverride) {
		adminError(ctx, fasthttp.StatusNotFound, fmt.Sprintf("route %q has no %s override%s", route, in.What, cohortSuffix(in.Cohort)))
		return
	}
	if err != nil {
		adminError(ctx, fasthttp.StatusInternalServerError, err.Error())
		return
	}
	reason := fmt.Sprintf("cleared the override %s (%s by %s", o.Key(), o.Source, orDash(o.Actor))
	if o.Incident != "" {
		reason += ", incident " + o.Incident
	}
	reason += ")"
	if in.Reason != "" {
		reason += ": " + in.Reason
	}
	if _, err := g.audit.Append(incidents.AuditEntry{Source: incidents.SourceOverrideRestore, Actor: in.Actor, Route: route,
		Revision: after.Revision, Reason: reason, Changes: configs.Diff(before, after)}); err != nil {
		g.log.Warn("audit append failed", "err", err)
	}
	g.log.Info("override restored", "override", o.Key(), "actor", in.Actor)
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"route": route, "cleared": o, "state": after.Route(route)})
}

func cohortSuffix(c string) string {
	if c == "" {
		return ""
	}
	return " for cohort " + c
}
