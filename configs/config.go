// Package configs holds Cairn's YAML configuration as Go types, its defaults,
// strict loading, validation that names the field path, and the revision hash
// of a loaded config. It imports nothing else of Cairn's.
//
// User-facing fields are exported and keep what the file said; values derived
// during validation (secrets read from the environment, compiled patterns and
// schemas, parsed digests) carry `yaml:"-" json:"-"` and are filled by Load.
// A *Config returned by Load is immutable by convention: callers must not
// modify it, and it is safe for concurrent reads.
package configs

import (
	"regexp"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// Config is the whole gateway configuration.
type Config struct {
	// Listen is the API address. Default 127.0.0.1:8080.
	Listen string `yaml:"listen" json:"listen"`
	// AdminListen is the admin address. Default 127.0.0.1:8081. A
	// non-loopback address requires admin_token_env.
	AdminListen string `yaml:"admin_listen" json:"admin_listen"`
	// AdminTokenEnv names the environment variable holding the admin bearer
	// token. Empty: the admin API needs no token (loopback only).
	AdminTokenEnv string `yaml:"admin_token_env" json:"admin_token_env,omitempty"`
	// Release is recorded in every capture record and snapshot.
	Release string `yaml:"release" json:"release,omitempty"`
	// DataDir holds capture files, incidents and the audit log. Default
	// ./cairn-data.
	DataDir string `yaml:"data_dir" json:"data_dir"`
	// RedisURL (redis://…) shares limits, incidents, audit and capture across
	// replicas. Empty: everything is local.
	RedisURL string `yaml:"redis_url" json:"redis_url,omitempty"`

	Server    Server     `yaml:"server" json:"server"`
	Providers []Provider `yaml:"providers" json:"providers"`
	Keys      []Key      `yaml:"keys" json:"keys,omitempty"`
	Routes    []Route    `yaml:"routes" json:"routes"`
	RateLimit RateLimit  `yaml:"ratelimit" json:"ratelimit"`
	Detection Detection  `yaml:"detection" json:"detection"`
	Masking   Masking    `yaml:"masking" json:"masking"`
	Capture   Capture    `yaml:"capture" json:"capture"`
	Tracing   Tracing    `yaml:"tracing" json:"tracing"`
	Notify    Notify     `yaml:"notify" json:"notify"`
	// Pricing prices tokens per provider and model for cost_usd.
	Pricing []Price `yaml:"pricing" json:"pricing,omitempty"`

	// Revision is a stable hash of the loaded config (secrets excluded,
	// schema file contents included). Filled by Load.
	Revision string `yaml:"-" json:"-"`
	// AdminToken is the admin bearer token read from AdminTokenEnv.
	AdminToken string `yaml:"-" json:"-"`
	// Path is the file the config was loaded from, if any.
	Path string `yaml:"-" json:"-"`

	keyIndex keyIndex // digest → index in Keys, built by Load (see KeyByDigest)
}

// Server holds the listener limits. fasthttp's own defaults are unlimited
// timeouts and 4 KiB headers, so every value here has an explicit default.
type Server struct {
	// MaxHeaderBytes bounds the request header block. Default 32 KiB; larger
	// headers get 431.
	MaxHeaderBytes int `yaml:"max_header_bytes" json:"max_header_bytes"`
	// MaxBodyBytes bounds a request body. Default 8 MiB; larger bodies get 413.
	// Routes may lower or raise it with max_body_bytes.
	MaxBodyBytes int `yaml:"max_body_bytes" json:"max_body_bytes"`
	// ReadTimeout bounds reading one request (headers and body). Default 10s.
	ReadTimeout Duration `yaml:"read_timeout" json:"read_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 60s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// WriteTimeout bounds writing a non-streaming response. Default 60s.
	WriteTimeout Duration `yaml:"write_timeout" json:"write_timeout"`
	// DrainTimeout bounds graceful shutdown. Default 30s.
	DrainTimeout Duration `yaml:"drain_timeout" json:"drain_timeout"`
	// MaxConcurrency bounds requests in flight (streams included); excess
	// requests get 429 with code "overloaded" at once. Default 10000.
	MaxConcurrency int `yaml:"max_concurrency" json:"max_concurrency"`
	// MaxInflightBodyBytes bounds the request body bytes held by requests
	// in flight (streams included): past it a request waits up to 2 s for
	// room, then gets 429 with code "overloaded". A body larger than the
	// bound is admitted alone. Default 24 MiB (issue 15: with the capture
	// budgets, the process stays within 256 MiB at any body size).
	MaxInflightBodyBytes int64 `yaml:"max_inflight_body_bytes" json:"max_inflight_body_bytes"`
}

// Provider is one upstream OpenAI-compatible API.
type Provider struct {
	Name string `yaml:"name" json:"name"`
	// BaseURL includes the version prefix, e.g. https://api.openai.com/v1.
	BaseURL string `yaml:"base_url" json:"base_url"`
	// APIKeyEnv names the environment variable holding the provider key.
	// Empty: no Authorization header is sent upstream.
	APIKeyEnv string `yaml:"api_key_env" json:"api_key_env,omitempty"`
	// Timeout is the time to the first response byte. Default 60s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// ConnectTimeout bounds dialing. Default 3s.
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// StreamIdleTimeout bounds the gap between stream chunks. Default 60s.
	StreamIdleTimeout Duration `yaml:"stream_idle_timeout" json:"stream_idle_timeout"`
	// StreamMaxDuration bounds a whole stream. Default 10m.
	StreamMaxDuration Duration `yaml:"stream_max_duration" json:"stream_max_duration"`
	// MaxResponseBytes bounds a non-streaming response body. Default 32 MiB.
	MaxResponseBytes int `yaml:"max_response_bytes" json:"max_response_bytes"`
	// MaxConns bounds pooled connections to this provider. Default 1024.
	MaxConns int `yaml:"max_conns" json:"max_conns"`
	// Headers are extra headers sent upstream on every request.
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	// AllowLinkLocal permits a base URL on a link-local address (cloud
	// metadata services live there). Default false.
	AllowLinkLocal bool `yaml:"allow_link_local" json:"allow_link_local,omitempty"`
	// Kind is the wire the provider speaks: openai (default), azure or
	// anthropic (provider_kind.go).
	Kind string `yaml:"kind" json:"kind,omitempty"`
	// Azure and Anthropic settings; see provider_kind.go.
	Deployments      map[string]string `yaml:"deployments" json:"deployments,omitempty"`
	APIVersion       string            `yaml:"api_version" json:"api_version,omitempty"`
	PathStyle        string            `yaml:"path_style" json:"path_style,omitempty"`
	AnthropicVersion string            `yaml:"anthropic_version" json:"anthropic_version,omitempty"`
	MaxTokens        int               `yaml:"max_tokens" json:"max_tokens,omitempty"`

	// APIKey is the secret read from APIKeyEnv. Never logged or recorded.
	APIKey string `yaml:"-" json:"-"`
}

// Key is one gateway key that clients present as a bearer token.
type Key struct {
	Name string `yaml:"name" json:"name"`
	// KeyEnv names the environment variable holding the key.
	KeyEnv string `yaml:"key_env" json:"key_env,omitempty"`
	// KeySHA256 is the hex SHA-256 of the key, for configs that must not
	// hold the secret at all. Exactly one of KeyEnv and KeySHA256 is set.
	KeySHA256 string `yaml:"key_sha256" json:"key_sha256,omitempty"`
	// RPM is requests per minute. 0: unlimited.
	RPM int `yaml:"rpm" json:"rpm,omitempty"`
	// TPM is tokens per minute. 0: unlimited.
	TPM int `yaml:"tpm" json:"tpm,omitempty"`
	// Routes, when set, is the allow-list of route names this key may use.
	Routes []string `yaml:"routes" json:"routes,omitempty"`
	// FailClosed refuses requests (429) while the shared limiter in Redis
	// is unreachable (three failed calls in a row; a slow answer is not a
	// failure), once the replica has spent the budget it still held,
	// instead of admitting a per-replica share of what remains.
	FailClosed bool `yaml:"fail_closed" json:"fail_closed,omitempty"`

	// Digest is the SHA-256 of the key, compared in constant time.
	Digest [32]byte `yaml:"-" json:"-"`
	// Secret is the key read from KeyEnv (empty with KeySHA256), kept so
	// that the gateway can find it in what it sends and writes. Never
	// logged or recorded.
	Secret string `yaml:"-" json:"-"`

	allowed map[string]struct{} // Routes as a set, built by Load (see Allows)
}

// Route maps client model names to upstream targets.
type Route struct {
	// Name is the model name clients send to reach this route.
	Name string `yaml:"name" json:"name"`
	// Match lists extra model-name globs (path.Match syntax, e.g. gpt-4o*).
	Match  []string       `yaml:"match" json:"match,omitempty"`
	Prompt Prompt         `yaml:"prompt" json:"prompt"`
	Flags  map[string]any `yaml:"flags" json:"flags,omitempty"`
	// Sticky chooses what keeps a caller in one cohort: key, user (the
	// request's user or safety_identifier) or header:NAME. Default user. A
	// request without that value gets a random cohort.
	Sticky    string   `yaml:"sticky" json:"sticky"`
	Targets   []Target `yaml:"targets" json:"targets"`
	Fallbacks []Target `yaml:"fallbacks" json:"fallbacks,omitempty"`
	Contract  Contract `yaml:"contract" json:"contract"`
	// AutoRollback sets a failing cohort's weight to 0 when an incident
	// opens on it and another cohort remains.
	AutoRollback bool `yaml:"auto_rollback" json:"auto_rollback"`
	// AutoRevertPrompt reverts the route's prompt to the version live
	// before its last change when an incident opens on a route whose
	// failing cohort is its only live one and the prompt changed within
	// detection.lookback before the first failure. A canary cohort is
	// rolled back first (auto_rollback). Default false.
	AutoRevertPrompt bool `yaml:"auto_revert_prompt" json:"auto_revert_prompt,omitempty"`
	// MaxBodyBytes overrides server.max_body_bytes for this route. 0: inherit.
	MaxBodyBytes int `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// Refusal, when it lists patterns, replaces detection.refusal.patterns
	// for this route.
	Refusal *Refusal `yaml:"refusal" json:"refusal,omitempty"`

	// Globs are the compiled Match patterns.
	Globs []string `yaml:"-" json:"-"`
}

// Prompt is the route's prompt state; System, when set, is injected as the
// first system message upstream.
type Prompt struct {
	Version string `yaml:"version" json:"version,omitempty"`
	System  string `yaml:"system" json:"system,omitempty"`
}

// Target is one upstream choice for a route.
type Target struct {
	Provider string `yaml:"provider" json:"provider"`
	// Model is the upstream model name. Empty: the client's model name
	// passes through unchanged.
	Model string `yaml:"model" json:"model,omitempty"`
	// Weight is the share of traffic among targets. Default 1 for
	// targets; ignored for fallbacks. 0 disables the target.
	Weight *int `yaml:"weight" json:"weight,omitempty"`
	// Cohort groups targets for sticky assignment and rollback. Default
	// "stable".
	Cohort string `yaml:"cohort" json:"cohort,omitempty"`
}

// W returns the target's weight with its default applied.
func (t Target) W() int {
	if t.Weight == nil {
		return 1
	}
	return *t.Weight
}

// DefaultCohort is the cohort of targets that name none.
const DefaultCohort = "stable"

// Contract modes.
const (
	ModeObserve = "observe"
	ModeEnforce = "enforce"
)

// Contract is what a route's responses must satisfy.
type Contract struct {
	// Mode is observe (default: judge and record) or enforce (a failing
	// non-streaming response is replaced by a fallback's or a 502).
	Mode string `yaml:"mode" json:"mode"`
	// SchemaFile is a JSON Schema, relative to the config file, that the
	// message content parsed as JSON must satisfy.
	SchemaFile string `yaml:"schema_file" json:"schema_file,omitempty"`
	// BufferStreams makes an enforce route hold a stream until judged.
	BufferStreams bool `yaml:"buffer_streams" json:"buffer_streams,omitempty"`

	// Schema is SchemaFile compiled at load; nil when unset.
	Schema *jsonschema.Schema `yaml:"-" json:"-"`
	// SchemaSHA256 is the hex digest of the schema file's bytes.
	SchemaSHA256 string `yaml:"-" json:"schema_sha256,omitempty"`
}

// RateLimit configures the shared limiter.
type RateLimit struct {
	// RedisTimeout is the most a request waits for a lease of its key's
	// budget when its replica holds none (a cold key, or demand beyond the
	// slice); it is then refused with retry-after 1s, unless Redis has
	// answered nothing for this long (hung) and the key is not fail_closed:
	// then it is decided as during an outage. Requests never wait on Redis
	// otherwise. Redis calls (in the background) have a deadline of this or
	// 1s, whichever is longer. Default 250ms.
	RedisTimeout Duration `yaml:"redis_timeout" json:"redis_timeout"`
	// Replicas is the expected replica count until the replicas'
	// heartbeats in Redis say how many are live; it sizes the leases and,
	// while Redis is unreachable, the share of what remains of the window
	// each replica may admit. Default 1.
	Replicas int `yaml:"replicas" json:"replicas"`
}

// Detection configures incident detection. Every signal's threshold is a
// Threshold: a bare number is its page level (the single values written
// before severities existed keep working), or {investigate: X, page: Y}.
// Rates are fractions in (0, 1]; ratios compare the window to its baseline
// and must be > 1.
type Detection struct {
	Window                Duration  `yaml:"window" json:"window"`
	MinRequests           int       `yaml:"min_requests" json:"min_requests"`
	ErrorRate             Threshold `yaml:"error_rate" json:"error_rate"`
	ContractFailureRate   Threshold `yaml:"contract_failure_rate" json:"contract_failure_rate"`
	LatencyP99Ratio       Threshold `yaml:"latency_p99_ratio" json:"latency_p99_ratio"`
	TokensPerSuccessRatio Threshold `yaml:"tokens_per_success_ratio" json:"tokens_per_success_ratio"`
	Upstream429Rate       Threshold `yaml:"upstream_429_rate" json:"upstream_429_rate"`
	// CostPerSuccessRatio is tokens_per_success_ratio in money (cost_usd
	// of successful requests, priced by pricing:). Default
	// {investigate: 1.3, page: 1.5}.
	CostPerSuccessRatio Threshold `yaml:"cost_per_success_ratio" json:"cost_per_success_ratio"`
	// Eval configures the eval_drift signal fed by POST /admin/scores.
	Eval Eval `yaml:"eval" json:"eval"`
	// RefusalRatePoints is the shift, in points (hundredths), of a
	// cohort's refusal rate against its baseline, in either direction,
	// that opens a refusal_rate incident. Default {investigate: 5, page:
	// 10}; a negative page disables the signal.
	RefusalRatePoints Threshold `yaml:"refusal_rate_points" json:"refusal_rate_points"`
	// PIILeakRate is the share of responses leaking personal data or
	// secrets that the request did not hold, above which (sustained over
	// the window, with min_requests) a pii_leak_rate incident of class
	// security opens. Default 0: any sustained leak; a negative page
	// disables the signal.
	PIILeakRate Threshold `yaml:"pii_leak_rate" json:"pii_leak_rate"`
	// Refusal holds the refusal phrases; routes may replace them.
	Refusal Refusal `yaml:"refusal" json:"refusal"`
	// Lookback is how far before the first failure changes are collected;
	// scores for requests older than it are stored but not detected on.
	// Default 24h.
	Lookback Duration `yaml:"lookback" json:"lookback"`
	// Disabled turns detection off.
	Disabled bool `yaml:"disabled" json:"disabled,omitempty"`
}

// Masking configures PII masking on top of the built-in detectors.
type Masking struct {
	Custom []CustomPattern `yaml:"custom" json:"custom,omitempty"`
}

// CustomPattern is a named regular expression; matches become [NAME].
type CustomPattern struct {
	Name    string `yaml:"name" json:"name"`
	Pattern string `yaml:"pattern" json:"pattern"`

	// Re is Pattern compiled at load.
	Re *regexp.Regexp `yaml:"-" json:"-"`
}

// Capture configures the capture records.
type Capture struct {
	// BodySampleRate is the share of successful requests whose masked
	// bodies are kept (failures always keep them). Default 1.
	BodySampleRate *float64 `yaml:"body_sample_rate" json:"body_sample_rate,omitempty"`
	// QueueSize bounds the asynchronous writer's queue. Default 65536.
	QueueSize int `yaml:"queue_size" json:"queue_size"`
	// MaxFileBytes rotates a JSONL file past this size. Default 64 MiB.
	MaxFileBytes int64 `yaml:"max_file_bytes" json:"max_file_bytes"`
	// RetentionDays deletes older capture files. Default 7.
	RetentionDays int `yaml:"retention_days" json:"retention_days"`
	// RedisStreamMaxLen caps the Redis stream (approximate). Default 100000.
	RedisStreamMaxLen int64 `yaml:"redis_stream_max_len" json:"redis_stream_max_len"`
	// Memory is how many recent records are kept in memory for lookup.
	// Default 10000.
	Memory int `yaml:"memory" json:"memory"`
	// FlushInterval bounds how long a record stays in the writer's buffer
	// before it is written to the capture file: the records a crash
	// (SIGKILL) can lose are those of the last FlushInterval plus the
	// queue. Default 100ms; at most 10s.
	FlushInterval Duration `yaml:"flush_interval" json:"flush_interval"`
	// Fsync is when capture files are synced to the disk: "off" (the
	// default: a process crash loses nothing written, a power loss or
	// kernel crash loses what the OS had not written back), "flush" (after
	// every flush: a power loss loses at most FlushInterval) or "rotate"
	// (when a file is closed).
	Fsync string `yaml:"fsync" json:"fsync"`
	// SpillBytes bounds the records kept in memory while the disk refuses
	// writes (full, read-only); past it new records are lost and counted
	// in cairn_capture_lost_total{sink="file",reason="spill_full"}.
	// Default 64 MiB.
	SpillBytes int64 `yaml:"spill_bytes" json:"spill_bytes"`
	// RedisBacklog bounds the records kept for the Redis stream while
	// Redis is down; they are written (backfilled) when it returns. Past
	// it records are lost to the stream (they stay in the files) and
	// counted. Default 100000.
	RedisBacklog int `yaml:"redis_backlog" json:"redis_backlog"`
	// ReserveBytes is disk space the capture files leave free for
	// incidents and the audit log: capture treats the disk as full when
	// less than this is free. Default 1 MiB; -1 disables the check.
	ReserveBytes int64 `yaml:"reserve_bytes" json:"reserve_bytes"`
	// MaxQueueBytes is the capture byte budget: the raw bodies of the
	// records between the request path and the sinks (queued, being
	// masked, waiting to be written) never exceed it. A record that would
	// pass it is still captured, without its bodies, and counted in
	// cairn_capture_bodies_dropped_total{reason="queue_bytes"}. Default
	// 32 MiB (issue 15: the process stays within 256 MiB under any body
	// size).
	MaxQueueBytes int64 `yaml:"max_queue_bytes" json:"max_queue_bytes"`
	// MemoryBytes bounds the masked records kept in memory for lookup
	// (with Memory, which bounds their count): past it the oldest are
	// evicted early; they are still found in the files. Default 16 MiB.
	MemoryBytes int64 `yaml:"memory_bytes" json:"memory_bytes"`
	// MaxTotalBytes caps the capture files on disk: past it the oldest
	// files are deleted (counted in cairn_capture_files_pruned_total
	// {reason="max_total_bytes"}), as files older than RetentionDays are.
	// Default 8 GiB; -1 disables the cap (age only).
	MaxTotalBytes int64 `yaml:"max_total_bytes" json:"max_total_bytes"`
}

// Fsync policies of capture files.
const (
	FsyncOff    = "off"
	FsyncFlush  = "flush"
	FsyncRotate = "rotate"
)

// SampleRate returns BodySampleRate with its default applied.
func (c Capture) SampleRate() float64 {
	if c.BodySampleRate == nil {
		return 1
	}
	return *c.BodySampleRate
}

// Tracing configures OpenTelemetry export.
type Tracing struct {
	// OTLPEndpoint (host:port or URL) enables OTLP/HTTP trace export. Empty:
	// spans are not exported.
	OTLPEndpoint string  `yaml:"otlp_endpoint" json:"otlp_endpoint,omitempty"`
	SampleRatio  float64 `yaml:"sample_ratio" json:"sample_ratio,omitempty"`
}

// Notify configures incident notifications.
type Notify struct {
	Webhooks []Webhook `yaml:"webhooks" json:"webhooks,omitempty"`
}

// Webhook receives a JSON POST on incident open, mitigation and resolution.
type Webhook struct {
	URL     string            `yaml:"url" json:"url"`
	Headers map[string]string `yaml:"headers" json:"-"`
}

// Duration is a time.Duration written in YAML as a string like "30s".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
