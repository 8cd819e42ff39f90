package proxy

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/incidents"
	"github.com/cairnhq/cairn/routing"
)

// overridesLoadWait bounds the first read of the override store at start;
// past it the gateway starts from its local copy (or stays unready until
// the store answers).
const overridesLoadWait = 2 * time.Second

// useOverrides keeps the live table's overrides in Redis (shared by the
// fleet, with a local copy in data_dir) or, without Redis, in data_dir,
// and applies the stored ones before the gateway turns ready (issue 17).
func (g *Gateway) useOverrides(cfg *configs.Config, rdb redis.UniversalClient, replica string) {
	g.overridesCtx, g.overridesStop = context.WithCancel(g.baseCtx)
	local := routing.NewFileStore(cfg.DataDir)
	o := routing.LiveOptions{Store: local, Logger: g.log, Now: g.now, Replica: replica}
	if rdb != nil {
		o.Store = routing.NewRedisStore(g.overridesCtx, rdb)
		o.Cache = local
	}
	g.live.UseStore(o)
	ctx, cancel := context.WithTimeout(g.baseCtx, overridesLoadWait)
	defer cancel()
	if err := g.live.LoadOverrides(ctx); err != nil {
		g.log.Warn("overrides not read from their store at start; retrying", "ready", g.live.Ready(), "err", err)
	}
	var err error
	if g.prompts, err = routing.NewPrompts(cfg.DataDir, rdb); err != nil {
		g.log.Warn("prompt registry unreadable; starting it empty", "err", err)
	}
	if n := len(g.live.Overrides()); n > 0 {
		g.log.Info("overrides applied", "overrides", n)
	}
}

// auditCleared appends one audit entry per override a reload cleared.
func (g *Gateway) auditCleared(cleared []configs.Override, source, revision string) {
	for _, o := range cleared {
		part := "targets"
		if o.What == configs.OverridePrompt {
			part = "prompt"
		}
		reason := fmt.Sprintf("%s changed the route's %s; cleared the override %s (%s by %s", source, part, o.Key(), o.Source, orDash(o.Actor))
		if o.Incident != "" {
			reason += ", incident " + o.Incident
		}
		reason += ")"
		g.log.Warn("override cleared by reload", "override", o.Key(), "source", source)
		if _, err := g.audit.Append(incidents.AuditEntry{Source: incidents.SourceOverrideCleared, Actor: source, Route: o.Route,
			Revision: revision, Reason: reason, Changes: []configs.Change{}}); err != nil {
			g.log.Warn("audit append failed", "err", err)
		}
	}
}

// writeOverrideMetrics writes the overrides in force, the changes the
// store has not accepted yet, and the fleet detection's counters.
func (g *Gateway) writeOverrideMetrics(w io.Writer) {
	st := g.live.Load().State()
	fmt.Fprintf(w, "# HELP cairn_overrides Overrides (rollbacks, prompt reverts) in force on this replica.\n# TYPE cairn_overrides gauge\ncairn_overrides %d\n", len(st.Overrides()))
	fmt.Fprintf(w, "# HELP cairn_overrides_pending Override changes made here that the store (Redis or data_dir) has not accepted yet; they hold here and are retried.\n# TYPE cairn_overrides_pending gauge\ncairn_overrides_pending %d\n", g.live.Pending())
	errs, fires := g.incidents.FleetStats()
	fmt.Fprintf(w, "# HELP cairn_fleet_detection_errors_total Rounds of publishing or merging detector counts through Redis that failed.\n# TYPE cairn_fleet_detection_errors_total counter\ncairn_fleet_detection_errors_total %d\n", errs)
	fmt.Fprintf(w, "# HELP cairn_fleet_detection_fires_total Signals that crossed on the fleet's merged counts.\n# TYPE cairn_fleet_detection_fires_total counter\ncairn_fleet_detection_fires_total %d\n", fires)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
