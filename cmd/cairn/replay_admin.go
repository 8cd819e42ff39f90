package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
)

// gatewayFromAdmin finds the API URL of the gateway whose admin URL is
// given: `cairn replay FILE --admin URL --route R` (issue 14.6) replays
// through the gateway that recorded the samples, judged by its own
// contract verdict. /admin/state names the API listener's bound address;
// a wildcard host ("0.0.0.0", "[::]") is reached at the admin URL's host.
func (s *source) gatewayFromAdmin() (string, error) {
	b, err := s.get("/admin/state")
	if err != nil {
		return "", fmt.Errorf("find the gateway through --admin %s: %w", s.admin, err)
	}
	var st struct {
		Listen string `json:"listen"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Listen == "" {
		return "", fmt.Errorf("find the gateway through --admin %s: /admin/state names no API address (a gateway older than cairn replay --admin); give --gateway URL", s.admin)
	}
	host, port, err := net.SplitHostPort(st.Listen)
	if err != nil {
		return "", fmt.Errorf("find the gateway through --admin %s: API address %q: %w", s.admin, st.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		u, err := url.Parse(s.admin)
		if err != nil || u.Hostname() == "" {
			return "", fmt.Errorf("--admin %q is not a URL", s.admin)
		}
		host = u.Hostname()
	}
	return "http://" + net.JoinHostPort(host, port), nil
}
