package configs

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// otlpEndpoint checks tracing.otlp_endpoint: an http(s) URL or host:port,
// as capture.NewTracing reads it. Credentials in it are refused, never
// echoed: the exporter would not send them (collectors take credentials in
// headers: OTEL_EXPORTER_OTLP_HEADERS), and the value is shown in the
// reload audit diff and /admin/state.
func (v *validator) otlpEndpoint(s string) {
	const f = "tracing.otlp_endpoint"
	if s == "" {
		return
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.errf("%s: not an http(s) URL or host:port", f)
		case u.User != nil:
			v.errf("%s: credentials in the URL are not allowed; give them as headers in OTEL_EXPORTER_OTLP_HEADERS", f)
		case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
			v.errf("%s: must not carry a query or fragment (the exporter would drop it); give credentials in OTEL_EXPORTER_OTLP_HEADERS", f)
		}
		return
	}
	host, port, err := net.SplitHostPort(s)
	if strings.ContainsAny(s, "@/?#") || err != nil || host == "" {
		v.errf("%s: not an http(s) URL or host:port", f)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.errf("%s: port %q is not a number between 1 and 65535", f, port)
	}
}
