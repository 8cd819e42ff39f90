package proxy

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/cairnhq/cairn/configs"
)

// liveReloadable are the config paths (and path prefixes) a reload applies
// to the running gateway. A change anywhere else needs a restart and the
// reload is refused naming it: a reload never answers 200 while the old
// value stays in force.
var liveReloadable = []string{
	"admin_token_env", "admin_token",
	"providers",                // rebuilt upstream pools
	"keys",                     // key sources and secrets
	"routes",                   // the route table (max_body_bytes too)
	"masking",                  // a new masker for the capture writer
	"capture.body_sample_rate", // read per record
	"server.drain_timeout",     // read at shutdown
	"pricing",                  // a new price table for the capture writer
}

func reloadable(path string) bool {
	for _, p := range liveReloadable {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// checkReload returns an error naming every change in next that the
// running gateway cannot apply (listeners, data dir, Redis, server limits,
// rate limiter, detection, capture sizes, tracing export, notify), and
// refuses a config that would leave the admin API without a token while
// it is bound to a non-loopback address.
func (g *Gateway) checkReload(cur, next *configs.Config) error {
	var errs []error
	for _, c := range configs.DiffConfig(cur, next) {
		if reloadable(c.Path) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: changing it needs a restart (running %v, file %v)", c.Path, show(c.From), show(c.To)))
	}
	for i, r := range next.Routes {
		if r.MaxBodyBytes > g.api.MaxRequestBodySize {
			errs = append(errs, fmt.Errorf("routes[%d].max_body_bytes: %d is above the running server's body limit %d; raising it needs a restart", i, r.MaxBodyBytes, g.api.MaxRequestBodySize))
		}
	}
	for i, p := range next.Providers {
		// The API server's write timeout bounds every response, streams
		// included, and is fixed when it starts (newAPIServer): a longer
		// stream_max_duration would be cut by it instead of honoured.
		if d := p.StreamMaxDuration.D(); d+streamWriteMargin > g.api.WriteTimeout {
			errs = append(errs, fmt.Errorf("providers[%d].stream_max_duration: %s is above what the running server's write timeout allows (%s); raising it needs a restart", i, d, g.api.WriteTimeout-streamWriteMargin))
		}
	}
	if next.AdminToken == "" {
		if addr := g.adminAddr.Load(); addr != nil && !loopback(*addr) {
			errs = append(errs, fmt.Errorf("admin_token_env: the admin API is bound to %s, not loopback; it cannot run without a token", *addr))
		}
	}
	return errors.Join(errs...)
}

func show(v any) string {
	if v == nil {
		return "unset"
	}
	return fmt.Sprintf("%q", fmt.Sprint(v))
}

// loopback reports whether addr (host:port) is a loopback address.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
