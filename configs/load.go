package configs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// MaxFileBytes bounds a config file; larger files are refused before parsing.
const MaxFileBytes = 4 << 20

// MaxSchemaFileBytes bounds a route's schema file.
const MaxSchemaFileBytes = 1 << 20

// Options tune Load. The zero value reads the process environment and
// resolves schema files against the working directory.
type Options struct {
	// Dir resolves relative schema_file paths. Default: the config file's
	// directory for LoadFile, the working directory for Load.
	Dir string
	// LookupEnv reads secrets. Default os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// LoadFile reads, decodes and validates the config at path.
func LoadFile(p string) (*Config, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", p, err)
	}
	c, err := Load(data, Options{Dir: filepath.Dir(p)})
	if err != nil {
		return nil, err
	}
	c.Path = p
	return c, nil
}

// Load decodes data strictly (an unknown key is an error with its line),
// applies defaults and validates everything, reporting every error at once
// with its field path. It returns nil and the joined errors when any fail.
func Load(data []byte, o Options) (*Config, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config: file is larger than %d bytes", MaxFileBytes)
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	var c Config
	decodeErrs, err := decode(data, &c)
	if err != nil {
		return nil, err
	}
	c.applyDefaults()
	v := validator{o: o, errs: decodeErrs}
	v.config(&c)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	rev, err := c.revision()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.Revision = rev
	c.indexKeys()
	return &c, nil
}

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defDur := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	defF := func(f *float64, v float64) {
		if *f == 0 {
			*f = v
		}
	}
	def(&c.Listen, "127.0.0.1:8080")
	def(&c.AdminListen, "127.0.0.1:8081")
	def(&c.DataDir, "./cairn-data")
	defInt(&c.Server.MaxHeaderBytes, 32<<10)
	defInt(&c.Server.MaxBodyBytes, 8<<20)
	defDur(&c.Server.ReadTimeout, 10*time.Second)
	defDur(&c.Server.IdleTimeout, 60*time.Second)
	defDur(&c.Server.WriteTimeout, 60*time.Second)
	defDur(&c.Server.DrainTimeout, 30*time.Second)
	defInt(&c.Server.MaxConcurrency, 10000)
	if c.Server.MaxInflightBodyBytes == 0 {
		c.Server.MaxInflightBodyBytes = 24 << 20
	}
	for i := range c.Providers {
		p := &c.Providers[i]
		defDur(&p.Timeout, 60*time.Second)
		defDur(&p.ConnectTimeout, 3*time.Second)
		defDur(&p.StreamIdleTimeout, 60*time.Second)
		defDur(&p.StreamMaxDuration, 10*time.Minute)
		defInt(&p.MaxResponseBytes, 32<<20)
		defInt(&p.MaxConns, 1024)
		p.kindDefaults()
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		def(&r.Sticky, "user")
		def(&r.Contract.Mode, ModeObserve)
		for j := range r.Targets {
			def(&r.Targets[j].Cohort, DefaultCohort)
		}
		for j := range r.Fallbacks {
			def(&r.Fallbacks[j].Cohort, DefaultCohort)
		}
	}
	defDur(&c.RateLimit.RedisTimeout, 250*time.Millisecond)
	defInt(&c.RateLimit.Replicas, 1)
	d := &c.Detection
	defDur(&d.Window, 30*time.Second)
	defInt(&d.MinRequests, 20)
	defThreshold(&d.ErrorRate, Threshold{Page: 0.2})
	defThreshold(&d.ContractFailureRate, Threshold{Page: 0.1})
	defThreshold(&d.LatencyP99Ratio, Threshold{Page: 2.0})
	defThreshold(&d.TokensPerSuccessRatio, Threshold{Page: 1.3})
	defThreshold(&d.Upstream429Rate, Threshold{Page: 0.5})
	defThreshold(&d.CostPerSuccessRatio, Threshold{Investigate: 1.3, Page: 1.5})
	d.Eval.defaults()
	defDur(&d.Lookback, 24*time.Hour)
	d.guardrailDefaults()
	defInt(&c.Capture.QueueSize, 65536)
	if c.Capture.MaxFileBytes == 0 {
		c.Capture.MaxFileBytes = 64 << 20
	}
	defInt(&c.Capture.RetentionDays, 7)
	if c.Capture.RedisStreamMaxLen == 0 {
		c.Capture.RedisStreamMaxLen = 100000
	}
	defInt(&c.Capture.Memory, 10000)
	defDur(&c.Capture.FlushInterval, 100*time.Millisecond)
	def(&c.Capture.Fsync, FsyncOff)
	if c.Capture.SpillBytes == 0 {
		c.Capture.SpillBytes = 64 << 20
	}
	defInt(&c.Capture.RedisBacklog, 100000)
	if c.Capture.ReserveBytes == 0 {
		c.Capture.ReserveBytes = 1 << 20
	}
	if c.Capture.MaxQueueBytes == 0 {
		c.Capture.MaxQueueBytes = 32 << 20
	}
	if c.Capture.MemoryBytes == 0 {
		c.Capture.MemoryBytes = 16 << 20
	}
	if c.Capture.MaxTotalBytes == 0 {
		c.Capture.MaxTotalBytes = 8 << 30
	}
	defF(&c.Tracing.SampleRatio, 1)
}

type validator struct {
	o    Options
	errs []error
}

func (v *validator) errf(format string, a ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, a...))
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)

func (v *validator) config(c *Config) {
	v.addr("listen", c.Listen)
	v.addr("admin_listen", c.AdminListen)
	if c.AdminTokenEnv != "" {
		tok, ok := v.o.LookupEnv(c.AdminTokenEnv)
		if !ok || tok == "" {
			v.errf("admin_token_env: environment variable %s is not set", c.AdminTokenEnv)
		}
		c.AdminToken = tok
	} else if host, _, err := net.SplitHostPort(c.AdminListen); err == nil && !isLoopbackHost(host) {
		v.errf("admin_listen: %q is not a loopback address; set admin_token_env to expose the admin API", c.AdminListen)
	}
	if c.RedisURL != "" {
		if _, err := url.Parse(c.RedisURL); err != nil || !(strings.HasPrefix(c.RedisURL, "redis://") || strings.HasPrefix(c.RedisURL, "rediss://") || strings.HasPrefix(c.RedisURL, "unix://")) {
			v.errf("redis_url: %q is not a redis:// URL", redactURL(c.RedisURL))
		}
	}
	s := c.Server
	v.positive("server.max_header_bytes", s.MaxHeaderBytes)
	v.positive("server.max_body_bytes", s.MaxBodyBytes)
	v.positive("server.max_concurrency", s.MaxConcurrency)
	if s.MaxInflightBodyBytes < 1<<20 {
		v.errf("server.max_inflight_body_bytes: %d is below 1048576 (1 MiB)", s.MaxInflightBodyBytes)
	}
	v.posDur("server.read_timeout", s.ReadTimeout)
	v.posDur("server.idle_timeout", s.IdleTimeout)
	v.posDur("server.write_timeout", s.WriteTimeout)
	v.posDur("server.drain_timeout", s.DrainTimeout)

	providers := map[string]bool{}
	if len(c.Providers) == 0 {
		v.errf("providers: at least one provider is required")
	}
	for i := range c.Providers {
		v.provider(i, &c.Providers[i], providers)
	}
	routes := map[string]bool{}
	if len(c.Routes) == 0 {
		v.errf("routes: at least one route is required")
	}
	for i := range c.Routes {
		v.route(i, &c.Routes[i], providers, routes, c)
	}
	keys := map[string]bool{}
	digests := map[[32]byte]bool{}
	for i := range c.Keys {
		v.key(i, &c.Keys[i], keys, digests, routes)
	}
	v.posDur("ratelimit.redis_timeout", c.RateLimit.RedisTimeout)
	v.positive("ratelimit.replicas", c.RateLimit.Replicas)
	d := c.Detection
	v.posDur("detection.window", d.Window)
	v.positive("detection.min_requests", d.MinRequests)
	v.rateThreshold("detection.error_rate", d.ErrorRate)
	v.rateThreshold("detection.contract_failure_rate", d.ContractFailureRate)
	v.rateThreshold("detection.upstream_429_rate", d.Upstream429Rate)
	v.ratioThreshold("detection.latency_p99_ratio", d.LatencyP99Ratio)
	v.ratioThreshold("detection.tokens_per_success_ratio", d.TokensPerSuccessRatio)
	v.ratioThreshold("detection.cost_per_success_ratio", d.CostPerSuccessRatio)
	v.eval("detection.eval", &c.Detection.Eval)
	v.pricing(c.Pricing, providers)
	v.posDur("detection.lookback", d.Lookback)
	v.guardrails(c)
	masks := map[string]bool{}
	for i := range c.Masking.Custom {
		m := &c.Masking.Custom[i]
		f := fmt.Sprintf("masking.custom[%d]", i)
		if !regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`).MatchString(m.Name) {
			v.errf("%s.name: %q must be lowercase letters, digits and _", f, m.Name)
		} else if masks[m.Name] {
			v.errf("%s.name: duplicate %q", f, m.Name)
		}
		masks[m.Name] = true
		re, err := regexp.Compile(m.Pattern)
		switch {
		case m.Pattern == "":
			v.errf("%s.pattern: required", f)
		case err != nil:
			v.errf("%s.pattern: %v", f, err)
		case re.MatchString(""):
			v.errf("%s.pattern: %q matches the empty string", f, m.Pattern)
		default:
			m.Re = re
		}
	}
	cp := c.Capture
	if r := cp.SampleRate(); !(r >= 0 && r <= 1) {
		v.errf("capture.body_sample_rate: %v is not between 0 and 1", r)
	}
	v.positive("capture.queue_size", cp.QueueSize)
	v.positive("capture.retention_days", cp.RetentionDays)
	v.positive("capture.memory", cp.Memory)
	if cp.MaxFileBytes < 1<<10 {
		v.errf("capture.max_file_bytes: %d is below 1024", cp.MaxFileBytes)
	}
	if cp.RedisStreamMaxLen < 1 {
		v.errf("capture.redis_stream_max_len: must be positive")
	}
	if d := cp.FlushInterval.D(); d <= 0 || d > 10*time.Second {
		v.errf("capture.flush_interval: %s is not between 0 and 10s", d)
	}
	switch cp.Fsync {
	case FsyncOff, FsyncFlush, FsyncRotate:
	default:
		v.errf("capture.fsync: %q is not one of off, flush, rotate", cp.Fsync)
	}
	if cp.SpillBytes < 0 {
		v.errf("capture.spill_bytes: must not be negative")
	}
	v.positive("capture.redis_backlog", cp.RedisBacklog)
	if cp.ReserveBytes < -1 {
		v.errf("capture.reserve_bytes: must be -1 (off) or at least 0")
	}
	if cp.MaxQueueBytes < 1<<20 {
		v.errf("capture.max_queue_bytes: %d is below 1048576 (1 MiB)", cp.MaxQueueBytes)
	}
	if cp.MemoryBytes < 1<<20 {
		v.errf("capture.memory_bytes: %d is below 1048576 (1 MiB)", cp.MemoryBytes)
	}
	if cp.MaxTotalBytes != -1 && cp.MaxTotalBytes < cp.MaxFileBytes {
		v.errf("capture.max_total_bytes: %d is below capture.max_file_bytes (%d); -1 turns the cap off", cp.MaxTotalBytes, cp.MaxFileBytes)
	}
	v.otlpEndpoint(c.Tracing.OTLPEndpoint)
	if r := c.Tracing.SampleRatio; !(r >= 0 && r <= 1) {
		v.errf("tracing.sample_ratio: %v is not between 0 and 1", c.Tracing.SampleRatio)
	}
	for i, w := range c.Notify.Webhooks {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL itself is not echoed: webhook URLs often embed a token.
			v.errf("notify.webhooks[%d].url: not an http(s) URL", i)
		}
	}
}

func (v *validator) provider(i int, p *Provider, seen map[string]bool) {
	f := fmt.Sprintf("providers[%d]", i)
	switch {
	case p.Name == "":
		v.errf("%s.name: required", f)
	case !namePattern.MatchString(p.Name) || strings.Contains(p.Name, "/"):
		v.errf("%s.name: %q may hold only letters, digits, '.', '_', ':' and '-'", f, p.Name)
	case seen[p.Name]:
		v.errf("%s.name: duplicate provider %q", f, p.Name)
	}
	seen[p.Name] = true
	u, err := url.Parse(p.BaseURL)
	switch {
	case p.BaseURL == "":
		v.errf("%s.base_url: required", f)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.errf("%s.base_url: %q is not an http(s) URL", f, redactURL(p.BaseURL))
	case u.User != nil:
		v.errf("%s.base_url: credentials in the URL are not allowed; use api_key_env", f)
	case u.RawQuery != "" || u.Fragment != "":
		// Not echoed: a query is where a misplaced API key would sit.
		v.errf("%s.base_url: must not carry a query or fragment", f)
	case isLooseIPv4(u.Hostname()):
		v.errf("%s.base_url: %q has a non-canonical numeric host; write the IP address in dotted-decimal form", f, p.BaseURL)
	case !p.AllowLinkLocal && isLinkLocalHost(u.Hostname()):
		v.errf("%s.base_url: %q points at a link-local (cloud metadata) address; set allow_link_local: true if this is intended", f, p.BaseURL)
	}
	if p.APIKeyEnv != "" {
		key, ok := v.o.LookupEnv(p.APIKeyEnv)
		if !ok || key == "" {
			v.errf("%s.api_key_env: environment variable %s is not set", f, p.APIKeyEnv)
		}
		p.APIKey = key
	}
	v.posDur(f+".timeout", p.Timeout)
	v.posDur(f+".connect_timeout", p.ConnectTimeout)
	v.posDur(f+".stream_idle_timeout", p.StreamIdleTimeout)
	v.posDur(f+".stream_max_duration", p.StreamMaxDuration)
	v.positive(f+".max_response_bytes", p.MaxResponseBytes)
	v.positive(f+".max_conns", p.MaxConns)
	v.providerKind(f, p)
	for h := range p.Headers {
		if !validHeaderName(h) {
			v.errf("%s.headers: %q is not a valid header name", f, h)
		}
		switch strings.ToLower(h) {
		case "host", "content-length", "transfer-encoding", "connection":
			v.errf("%s.headers: %q is managed by the gateway", f, h)
		}
	}
}

func (v *validator) key(i int, k *Key, seen map[string]bool, digests map[[32]byte]bool, routes map[string]bool) {
	f := fmt.Sprintf("keys[%d]", i)
	switch {
	case k.Name == "":
		v.errf("%s.name: required", f)
	case !namePattern.MatchString(k.Name):
		v.errf("%s.name: %q may hold only letters, digits, '.', '_', ':', '/' and '-'", f, k.Name)
	case seen[k.Name]:
		v.errf("%s.name: duplicate key %q", f, k.Name)
	}
	seen[k.Name] = true
	switch {
	case k.KeyEnv != "" && k.KeySHA256 != "":
		v.errf("%s: set only one of key_env and key_sha256", f)
	case k.KeyEnv != "":
		secret, ok := v.o.LookupEnv(k.KeyEnv)
		if !ok || secret == "" {
			v.errf("%s.key_env: environment variable %s is not set", f, k.KeyEnv)
		} else {
			k.Digest = sha256.Sum256([]byte(secret))
			k.Secret = secret
		}
	case k.KeySHA256 != "":
		b, err := hex.DecodeString(k.KeySHA256)
		if err != nil || len(b) != 32 {
			v.errf("%s.key_sha256: not 64 hex digits", f)
		} else {
			copy(k.Digest[:], b)
		}
	default:
		v.errf("%s: one of key_env and key_sha256 is required", f)
	}
	if k.Digest != ([32]byte{}) {
		if digests[k.Digest] {
			v.errf("%s: the same secret as an earlier key", f)
		}
		digests[k.Digest] = true
	}
	if k.RPM > maxExactInt || k.TPM > maxExactInt {
		v.errf("%s: rpm and tpm must be at most 2^53 (%d), the largest integers JSON keeps exact", f, maxExactInt)
	}
	if k.RPM < 0 {
		v.errf("%s.rpm: %d is negative", f, k.RPM)
	}
	if k.TPM < 0 {
		v.errf("%s.tpm: %d is negative", f, k.TPM)
	}
	for j, r := range k.Routes {
		if !routes[r] {
			v.errf("%s.routes[%d]: unknown route %q", f, j, r)
		}
	}
}

func (v *validator) route(i int, r *Route, providers, seen map[string]bool, c *Config) {
	f := fmt.Sprintf("routes[%d]", i)
	switch {
	case r.Name == "":
		v.errf("%s.name: required", f)
	case !namePattern.MatchString(r.Name):
		v.errf("%s.name: %q may hold only letters, digits, '.', '_', ':', '/' and '-'", f, r.Name)
	case seen[r.Name]:
		v.errf("%s.name: duplicate route %q", f, r.Name)
	}
	seen[r.Name] = true
	r.Globs = nil
	for j, g := range r.Match {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			v.errf("%s.match[%d]: %q is not a valid glob", f, j, g)
			continue
		}
		r.Globs = append(r.Globs, g)
	}
	switch {
	case r.Sticky == "key", r.Sticky == "user":
	case strings.HasPrefix(r.Sticky, "header:") && validHeaderName(strings.TrimPrefix(r.Sticky, "header:")):
	default:
		v.errf("%s.sticky: %q is not key, user or header:NAME", f, r.Sticky)
	}
	if len(r.Targets) == 0 {
		v.errf("%s.targets: at least one target is required", f)
	}
	total := 0
	for j, t := range r.Targets {
		v.target(fmt.Sprintf("%s.targets[%d]", f, j), t, providers)
		total += max(t.W(), 0)
	}
	if len(r.Targets) > 0 && total == 0 {
		v.errf("%s.targets: all weights are 0", f)
	}
	if len(r.Fallbacks) > 8 {
		v.errf("%s.fallbacks: %d fallbacks; at most 8", f, len(r.Fallbacks))
	}
	for j, t := range r.Fallbacks {
		v.target(fmt.Sprintf("%s.fallbacks[%d]", f, j), t, providers)
	}
	for k, x := range r.Flags {
		if k == "" {
			v.errf("%s.flags: empty flag name", f)
			continue
		}
		// Flags are shown in state and hashed into the revision as JSON;
		// YAML can hold what JSON cannot (NaN, Inf, maps with non-string keys).
		if _, err := json.Marshal(x); err != nil {
			v.errf("%s.flags.%s: value cannot be represented as JSON (no .nan or .inf, map keys must be strings)", f, k)
		} else if p, n, bad := inexactInt(x); bad {
			v.errf("%s.flags.%s%s: %s cannot be kept exact (integers beyond 2^53 lose digits in JSON, and the frozen hash of an incident could not be verified); quote it as a string", f, k, p, n)
		}
	}
	if r.MaxBodyBytes < 0 {
		v.errf("%s.max_body_bytes: %d is negative", f, r.MaxBodyBytes)
	}
	ct := &r.Contract
	if ct.Mode != ModeObserve && ct.Mode != ModeEnforce {
		v.errf("%s.contract.mode: %q is not observe or enforce", f, ct.Mode)
	}
	if ct.BufferStreams && ct.Mode != ModeEnforce {
		v.errf("%s.contract.buffer_streams: only meaningful with mode: enforce", f)
	}
	if ct.SchemaFile != "" {
		v.schemaFile(f+".contract.schema_file", ct)
	}
}

func (v *validator) target(f string, t Target, providers map[string]bool) {
	if t.Provider == "" {
		v.errf("%s.provider: required", f)
	} else if !providers[t.Provider] {
		v.errf("%s.provider: unknown provider %q", f, t.Provider)
	}
	if t.W() < 0 {
		v.errf("%s.weight: %d is negative", f, t.W())
	}
	if t.W() > 1_000_000 {
		v.errf("%s.weight: %d is above 1000000", f, t.W())
	}
	if !namePattern.MatchString(t.Cohort) {
		v.errf("%s.cohort: %q may hold only letters, digits, '.', '_', ':', '/' and '-'", f, t.Cohort)
	}
	if strings.ContainsAny(t.Model, "\"\\\x00\r\n") {
		v.errf("%s.model: %q has characters a model name cannot hold", f, t.Model)
	}
}

// ErrExternalRef is returned when a schema refers to a remote or file
// location; Cairn never loads schemas from outside the document.
var ErrExternalRef = errors.New("remote and file $ref are not allowed")

// revision hashes the config's JSON form (secrets carry json:"-") plus the
// digests of schema files, so the same file yields the same revision on
// every replica and restart.
func (c *Config) revision() (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		// Validation refuses every value JSON cannot hold; reaching this
		// is a bug, but the input came from a user, so it is not a panic.
		return "", fmt.Errorf("compute revision: %w", err)
	}
	h := sha256.New()
	h.Write(b)
	for _, r := range c.Routes {
		h.Write([]byte(r.Contract.SchemaSHA256))
	}
	return "rev_" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// Provider returns the named provider, or nil.
func (c *Config) Provider(name string) *Provider {
	for i := range c.Providers {
		if c.Providers[i].Name == name {
			return &c.Providers[i]
		}
	}
	return nil
}

// Route returns the named route, or nil.
func (c *Config) Route(name string) *Route {
	for i := range c.Routes {
		if c.Routes[i].Name == name {
			return &c.Routes[i]
		}
	}
	return nil
}
