package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/incidents"
	"github.com/cairnhq/cairn/routing"
)

// promptsLoop refreshes the live prompts' last_seen in the registry until
// the gateway stops. It never runs on the request path.
func (g *Gateway) promptsLoop() {
	defer g.workers.Done()
	t := time.NewTicker(routing.PromptsTouchEvery)
	defer t.Stop()
	for {
		select {
		case <-g.overridesCtx.Done():
			return
		case <-t.C:
			g.promptsSeen()
		}
	}
}

// promptsSeen records the live prompts in the registry.
func (g *Gateway) promptsSeen() {
	ctx, cancel := context.WithTimeout(g.baseCtx, time.Second)
	defer cancel()
	if err := g.prompts.Seen(ctx, g.live.Load().State(), g.now()); err != nil {
		g.log.Warn("prompt registry not updated", "err", err)
	}
}

func (g *Gateway) listPrompts(ctx *fasthttp.RequestCtx, route string) {
	r := g.live.Load().Route(route)
	if r == nil {
		adminError(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no route %q", route))
		return
	}
	c, cancel := context.WithTimeout(g.baseCtx, 2*time.Second)
	defer cancel()
	vs, err := g.prompts.List(c, route, r.Config.Prompt)
	if err != nil {
		adminError(ctx, fasthttp.StatusServiceUnavailable, "prompt registry: "+err.Error())
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"route": route, "live": r.Config.Prompt.Version, "versions": nonNil(vs)})
}

func (g *Gateway) revertPrompt(ctx *fasthttp.RequestCtx, route string) {
	in, ok := g.readMitigation(ctx, `{"to": "v17", "reason": "..."}`)
	if !ok {
		return
	}
	r := g.live.Load().Route(route)
	if r == nil {
		adminError(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no route %q", route))
		return
	}
	c, cancel := context.WithTimeout(g.baseCtx, 2*time.Second)
	defer cancel()
	v, err := g.prompts.Find(c, route, in.To, r.Config.Prompt)
	if errors.Is(err, routing.ErrUnknownPrompt) {
		adminError(ctx, fasthttp.StatusConflict, err.Error()+"; GET /admin/routes/"+route+"/prompts lists the versions it served")
		return
	}
	if err != nil {
		adminError(ctx, fasthttp.StatusServiceUnavailable, "prompt registry: "+err.Error())
		return
	}
	out, err := g.RevertPrompt(route, v.Prompt(), incidents.SourcePromptRevert, in.Actor, in.Reason, in.Incident)
	if err != nil {
		adminError(ctx, fasthttp.StatusConflict, err.Error())
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

// RevertPrompt installs an override that serves p on the route, audits it
// and records it on the route's open incidents. It returns the override
// and the route's state after.
func (g *Gateway) RevertPrompt(route string, p configs.Prompt, source, actor, reason, incident string) (map[string]any, error) {
	before, after, o, err := g.live.Mitigate(configs.Override{Route: route, What: configs.OverridePrompt, Prompt: &p,
		Source: source, Actor: actor, Reason: reason, Incident: incident})
	if err != nil {
		return nil, err
	}
	from := before.Route(route).Prompt.Version
	why := fmt.Sprintf("reverted prompt of route %s from %s to %s", route, orDash(from), orDash(p.Version))
	if reason != "" {
		why += ": " + reason
	}
	if _, err := g.audit.Append(incidents.AuditEntry{Source: source, Actor: actor, Route: route, Revision: after.Revision,
		Reason: why, Changes: configs.Diff(before, after)}); err != nil {
		g.log.Warn("audit append failed", "err", err)
	}
	g.promptsSeen()
	g.log.Info("prompt reverted", "route", route, "from", from, "to", p.Version, "actor", actor)
	return map[string]any{"route": route, "from": from, "to": p.Version, "override": o, "state": after.Route(route)}, nil
}
