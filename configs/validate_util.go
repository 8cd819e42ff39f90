package configs

import (
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
)

func (v *validator) addr(f, a string) {
	_, port, err := net.SplitHostPort(a)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		v.errf("%s: %q is not host:port", f, a)
	}
}

func (v *validator) positive(f string, n int) {
	if n <= 0 {
		v.errf("%s: %d must be positive", f, n)
	}
}

func (v *validator) posDur(f string, d Duration) {
	if d <= 0 {
		v.errf("%s: %s must be positive", f, d.D())
	}
}

func (v *validator) rate(f string, x float64) {
	if !(x > 0 && x <= 1) {
		v.errf("%s: %v is not in (0, 1]", f, x)
	}
}

func (v *validator) ratio(f string, x float64) {
	if !(x > 1) || math.IsInf(x, 1) {
		v.errf("%s: %v must be greater than 1", f, x)
	}
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func isLinkLocalHost(h string) bool {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	switch h {
	case "metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal":
		return true
	}
	// A zone (fe80::1%eth0) is legal in a URL but not in net.ParseIP.
	if i := strings.IndexByte(h, '%'); i >= 0 {
		h = h[:i]
	}
	ip := net.ParseIP(h)
	if ip == nil {
		return false
	}
	// fd00:ec2::254 is AWS's IPv6 metadata endpoint.
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.Equal(net.ParseIP("fd00:ec2::254"))
}

// isLooseIPv4 reports whether h is an IPv4 address in one of the
// non-canonical forms inet_aton accepts (2852039166, 0xa9fea9fe,
// 0251.0376.0251.0376, 169.254.43518). Go's parser rejects them but a cgo
// resolver would dial them, so they could hide a link-local address.
func isLooseIPv4(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || net.ParseIP(h) != nil {
		return false
	}
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 0, 32); err != nil {
			return false
		}
	}
	return true
}

// redactURL drops userinfo and query values from a URL so an error never
// carries a password. A string that does not parse as a URL with a host
// keeps only what follows its last '@' and nothing after a '?'.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err == nil && (u.User != nil || !strings.Contains(s, "@")) {
		if u.User != nil {
			u.User = url.User("REDACTED")
		}
		if u.RawQuery != "" {
			q := u.Query()
			for k := range q {
				q[k] = []string{"REDACTED"}
			}
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		s = "…" + s[i:]
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i] + "?…"
	}
	return s
}

// RedactURL returns s with any password replaced, for logs and state.
func RedactURL(s string) string { return redactURL(s) }
