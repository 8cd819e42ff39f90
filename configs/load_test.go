package configs_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// Pieces of a minimal valid config; cases below replace one of them.
const (
	okProviders = "providers: [{name: openai, base_url: 'https://api.openai.com/v1'}]\n"
	okRoutes    = "routes: [{name: r, targets: [{provider: openai}]}]\n"
	okBase      = okProviders + okRoutes
)

// env returns a LookupEnv over m, so tests never read the process environment.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func load(t *testing.T, y string, o configs.Options) (*configs.Config, error) {
	t.Helper()
	if o.LookupEnv == nil {
		o.LookupEnv = env(nil)
	}
	c, err := configs.Load([]byte(y), o)
	if (c == nil) == (err == nil) {
		t.Fatalf("Load(%q) = %v, %v; want exactly one of config and error", y, c, err)
	}
	return c, err
}

func mustLoad(t *testing.T, y string, o configs.Options) *configs.Config {
	t.Helper()
	c, err := load(t, y, o)
	if err != nil {
		t.Fatalf("Load(%q) = %v; want no error", y, err)
	}
	return c
}

// errList splits a joined error into its parts.
func errList(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

func TestLoadErrors(t *testing.T) {
	testEnv := map[string]string{"SET": "value-1", "SET2": "value-2", "EMPTY": ""}
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	prov := func(extra string) string {
		return "providers: [{name: openai, base_url: 'https://api.openai.com/v1', " + extra + "}]\n" + okRoutes
	}
	purl := func(u string) string {
		return "providers: [{name: openai, base_url: '" + u + "'}]\n" + okRoutes
	}
	route := func(extra string) string {
		return okProviders + "routes: [{name: r, targets: [{provider: openai}], " + extra + "}]\n"
	}
	target := func(extra string) string {
		return okProviders + "routes: [{name: r, targets: [{provider: openai, " + extra + "}]}]\n"
	}
	key := func(k string) string { return okBase + "keys: [" + k + "]\n" }

	tests := []struct {
		name string
		yaml string
		want string
		n    int // number of errors; 0 means 1
	}{
		// Decoding.
		{"empty", "", "config: empty document", 0},
		{"comment only", "# nothing\n", "config: empty document", 0},
		{"multi document", okBase + "---\n" + okBase, "config: more than one YAML document", 0},
		{"unknown top key", okBase + "lisen: 1.2.3.4:80\n", `lisen: unknown field (did you mean "listen"?) at line 3`, 0},
		{"unknown nested key", okProviders + "routes:\n  - name: r\n    targets:\n      - provider: openai\n        wieght: 3\n", `routes[0].targets[0].wieght: unknown field (did you mean "weight"?) at line 6`, 0},
		{"string for int", okBase + "keys: [{name: k, key_sha256: " + digest("a") + ", rpm: fast}]\n", `keys[0].rpm: expected an integer, got "fast" at line 3`, 0},
		{"list for string", okBase + "release: [a, b]\n", "release: expected a string, got a list at line 3", 0},
		{"bad duration", okBase + "server:\n  read_timeout: 3x\n", `server.read_timeout: "3x" is not a duration like "30s" at line 4`, 0},
		{"duration without unit", okBase + "server:\n  read_timeout: 30\n", `server.read_timeout: "30" is not a duration like "30s" at line 4`, 0},
		{"duration not scalar", okBase + "server:\n  idle_timeout: [1]\n", `server.idle_timeout: expected a duration like "30s" at line 4`, 0},
		{"bool for bool ok but map for bool", okBase + "detection: {disabled: {a: 1}}\n", "detection.disabled: expected true or false, got a mapping at line 3", 0},
		{"not a mapping", "- a\n- b\n", "config: the file holds a list; expected a mapping of fields", 0},
		{"syntax error", "routes: [\n", "config: yaml:", 0},

		// Top level.
		{"listen no port", okBase + "listen: localhost\n", `listen: "localhost" is not host:port`, 0},
		{"listen bad port", okBase + "listen: '127.0.0.1:http'\n", `listen: "127.0.0.1:http" is not host:port`, 0},
		{"listen port range", okBase + "listen: '127.0.0.1:70000'\n", `listen: "127.0.0.1:70000" is not host:port`, 0},
		{"admin_listen", okBase + "admin_listen: '127.0.0.1:'\n", `admin_listen: "127.0.0.1:" is not host:port`, 0},
		{"admin not loopback", okBase + "admin_listen: '0.0.0.0:8081'\n", `admin_listen: "0.0.0.0:8081" is not a loopback address; set admin_token_env to expose the admin API`, 0},
		{"admin all interfaces", okBase + "admin_listen: ':8081'\n", `admin_listen: ":8081" is not a loopback address`, 0},
		{"admin token unset", okBase + "admin_token_env: ADMIN_TOKEN\n", "admin_token_env: environment variable ADMIN_TOKEN is not set", 0},
		{"admin token empty", okBase + "admin_token_env: EMPTY\n", "admin_token_env: environment variable EMPTY is not set", 0},
		{"redis scheme", okBase + "redis_url: 'http://127.0.0.1:6379'\n", `redis_url: "http://127.0.0.1:6379" is not a redis:// URL`, 0},
		{"redis no scheme", okBase + "redis_url: '127.0.0.1:6379'\n", `redis_url: "127.0.0.1:6379" is not a redis:// URL`, 0},
		{"max_header_bytes", okBase + "server: {max_header_bytes: -1}\n", "server.max_header_bytes: -1 must be positive", 0},
		{"max_body_bytes", okBase + "server: {max_body_bytes: -5}\n", "server.max_body_bytes: -5 must be positive", 0},
		{"max_concurrency", okBase + "server: {max_concurrency: -1}\n", "server.max_concurrency: -1 must be positive", 0},
		{"read_timeout", okBase + "server: {read_timeout: -1s}\n", "server.read_timeout: -1s must be positive", 0},
		{"idle_timeout", okBase + "server: {idle_timeout: -1s}\n", "server.idle_timeout: -1s must be positive", 0},
		{"write_timeout", okBase + "server: {write_timeout: -1s}\n", "server.write_timeout: -1s must be positive", 0},
		{"drain_timeout", okBase + "server: {drain_timeout: -2m}\n", "server.drain_timeout: -2m0s must be positive", 0},
		{"no providers", okRoutes, "providers: at least one provider is required", 2}, // and the target's provider is unknown
		{"no routes", okProviders, "routes: at least one route is required", 0},
		{"redis_timeout", okBase + "ratelimit: {redis_timeout: -1ms}\n", "ratelimit.redis_timeout: -1ms must be positive", 0},
		{"replicas", okBase + "ratelimit: {replicas: -3}\n", "ratelimit.replicas: -3 must be positive", 0},

		// Detection.
		{"window", okBase + "detection: {window: -1s}\n", "detection.window: -1s must be positive", 0},
		{"min_requests", okBase + "detection: {min_requests: -1}\n", "detection.min_requests: -1 must be positive", 0},
		{"error_rate high", okBase + "detection: {error_rate: 1.5}\n", "detection.error_rate: 1.5 is not in (0, 1]", 0},
		{"error_rate negative", okBase + "detection: {error_rate: -0.1}\n", "detection.error_rate: -0.1 is not in (0, 1]", 0},
		{"error_rate nan", okBase + "detection: {error_rate: .nan}\n", "detection.error_rate: NaN is not in (0, 1]", 0},
		{"contract_failure_rate", okBase + "detection: {contract_failure_rate: 2}\n", "detection.contract_failure_rate: 2 is not in (0, 1]", 0},
		{"upstream_429_rate", okBase + "detection: {upstream_429_rate: -1}\n", "detection.upstream_429_rate: -1 is not in (0, 1]", 0},
		{"latency_p99_ratio", okBase + "detection: {latency_p99_ratio: 0.5}\n", "detection.latency_p99_ratio: 0.5 must be greater than 1", 0},
		{"latency_p99_ratio one", okBase + "detection: {latency_p99_ratio: 1}\n", "detection.latency_p99_ratio: 1 must be greater than 1", 0},
		{"latency_p99_ratio inf", okBase + "detection: {latency_p99_ratio: .inf}\n", "detection.latency_p99_ratio: +Inf must be greater than 1", 0},
		{"tokens_per_success_ratio", okBase + "detection: {tokens_per_success_ratio: .nan}\n", "detection.tokens_per_success_ratio: NaN must be greater than 1", 0},
		{"lookback", okBase + "detection: {lookback: -1h}\n", "detection.lookback: -1h0m0s must be positive", 0},

		// Masking.
		{"mask name", okBase + "masking: {custom: [{name: Bad-Name, pattern: x}]}\n", `masking.custom[0].name: "Bad-Name" must be lowercase letters, digits and _`, 0},
		{"mask name empty", okBase + "masking: {custom: [{pattern: x}]}\n", `masking.custom[0].name: "" must be lowercase letters, digits and _`, 0},
		{"mask duplicate", okBase + "masking: {custom: [{name: a, pattern: x}, {name: a, pattern: y}]}\n", `masking.custom[1].name: duplicate "a"`, 0},
		{"mask pattern required", okBase + "masking: {custom: [{name: a}]}\n", "masking.custom[0].pattern: required", 0},
		{"mask pattern invalid", okBase + "masking: {custom: [{name: a, pattern: '(x'}]}\n", "masking.custom[0].pattern: error parsing regexp: missing closing ): `(x`", 0},
		{"mask pattern empty match", okBase + "masking: {custom: [{name: a, pattern: 'x*'}]}\n", `masking.custom[0].pattern: "x*" matches the empty string`, 0},

		// Capture, tracing, notify.
		{"body_sample_rate", okBase + "capture: {body_sample_rate: 1.5}\n", "capture.body_sample_rate: 1.5 is not between 0 and 1", 0},
		{"body_sample_rate nan", okBase + "capture: {body_sample_rate: .nan}\n", "capture.body_sample_rate: NaN is not between 0 and 1", 0},
		{"queue_size", okBase + "capture: {queue_size: -1}\n", "capture.queue_size: -1 must be positive", 0},
		{"retention_days", okBase + "capture: {retention_days: -7}\n", "capture.retention_days: -7 must be positive", 0},
		{"memory", okBase + "capture: {memory: -1}\n", "capture.memory: -1 must be positive", 0},
		{"max_file_bytes", okBase + "capture: {max_file_bytes: 100}\n", "capture.max_file_bytes: 100 is below 1024", 0},
		{"redis_stream_max_len", okBase + "capture: {redis_stream_max_len: -1}\n", "capture.redis_stream_max_len: must be positive", 0},
		{"sample_ratio", okBase + "tracing: {sample_ratio: 2}\n", "tracing.sample_ratio: 2 is not between 0 and 1", 0},
		{"sample_ratio negative", okBase + "tracing: {sample_ratio: -0.5}\n", "tracing.sample_ratio: -0.5 is not between 0 and 1", 0},
		{"webhook scheme", okBase + "notify: {webhooks: [{url: 'ftp://h/x'}]}\n", "notify.webhooks[0].url: not an http(s) URL", 0},
		{"webhook no host", okBase + "notify: {webhooks: [{url: 'https:///x'}]}\n", "notify.webhooks[0].url: not an http(s) URL", 0},

		// Providers.
		{"provider name required", "providers: [{base_url: 'http://h/v1'}]\n" + okRoutes, "providers[0].name: required", 2},
		{"provider name slash", "providers: [{name: a/b, base_url: 'http://h/v1'}]\n" + okRoutes, `providers[0].name: "a/b" may hold only letters, digits, '.', '_', ':' and '-'`, 2},
		{"provider name space", "providers: [{name: 'a b', base_url: 'http://h/v1'}]\n" + okRoutes, `providers[0].name: "a b" may hold only`, 2},
		{"provider duplicate", "providers: [{name: openai, base_url: 'http://h/v1'}, {name: openai, base_url: 'http://g/v1'}]\n" + okRoutes, `providers[1].name: duplicate provider "openai"`, 0},
		{"base_url required", "providers: [{name: openai}]\n" + okRoutes, "providers[0].base_url: required", 0},
		{"base_url scheme", purl("ftp://h/v1"), `providers[0].base_url: "ftp://h/v1" is not an http(s) URL`, 0},
		{"base_url no scheme", purl("api.openai.com/v1"), `providers[0].base_url: "api.openai.com/v1" is not an http(s) URL`, 0},
		{"base_url credentials", purl("https://user:pw@h/v1"), "providers[0].base_url: credentials in the URL are not allowed; use api_key_env", 0},
		{"base_url query", purl("https://h/v1?api_key=x"), "providers[0].base_url: must not carry a query or fragment", 0},
		{"base_url fragment", purl("https://h/v1#x"), "providers[0].base_url: must not carry a query or fragment", 0},
		{"api_key_env unset", prov("api_key_env: OPENAI_API_KEY"), "providers[0].api_key_env: environment variable OPENAI_API_KEY is not set", 0},
		{"api_key_env empty", prov("api_key_env: EMPTY"), "providers[0].api_key_env: environment variable EMPTY is not set", 0},
		{"timeout", prov("timeout: -1s"), "providers[0].timeout: -1s must be positive", 0},
		{"connect_timeout", prov("connect_timeout: -1s"), "providers[0].connect_timeout: -1s must be positive", 0},
		{"stream_idle_timeout", prov("stream_idle_timeout: -1s"), "providers[0].stream_idle_timeout: -1s must be positive", 0},
		{"stream_max_duration", prov("stream_max_duration: -1s"), "providers[0].stream_max_duration: -1s must be positive", 0},
		{"max_response_bytes", prov("max_response_bytes: -1"), "providers[0].max_response_bytes: -1 must be positive", 0},
		{"max_conns", prov("max_conns: -1"), "providers[0].max_conns: -1 must be positive", 0},
		{"header name", prov("headers: {'bad header': x}"), `providers[0].headers: "bad header" is not a valid header name`, 0},
		{"header managed", prov("headers: {Host: x}"), `providers[0].headers: "Host" is managed by the gateway`, 0},
		{"header te", prov("headers: {transfer-encoding: x}"), `providers[0].headers: "transfer-encoding" is managed by the gateway`, 0},

		// Keys.
		{"key name required", key("{key_sha256: " + digest("a") + "}"), "keys[0].name: required", 0},
		{"key name invalid", key("{name: 'a b', key_sha256: " + digest("a") + "}"), `keys[0].name: "a b" may hold only letters, digits, '.', '_', ':', '/' and '-'`, 0},
		{"key duplicate", key("{name: k, key_sha256: " + digest("a") + "}, {name: k, key_sha256: " + digest("b") + "}"), `keys[1].name: duplicate key "k"`, 0},
		{"key both", key("{name: k, key_env: SET, key_sha256: " + digest("a") + "}"), "keys[0]: set only one of key_env and key_sha256", 0},
		{"key neither", key("{name: k}"), "keys[0]: one of key_env and key_sha256 is required", 0},
		{"key_env unset", key("{name: k, key_env: CHECKOUT_KEY}"), "keys[0].key_env: environment variable CHECKOUT_KEY is not set", 0},
		{"key_env empty", key("{name: k, key_env: EMPTY}"), "keys[0].key_env: environment variable EMPTY is not set", 0},
		{"key_sha256 short", key("{name: k, key_sha256: " + digest("a")[:63] + "}"), "keys[0].key_sha256: not 64 hex digits", 0},
		{"key_sha256 long", key("{name: k, key_sha256: " + digest("a") + "00}"), "keys[0].key_sha256: not 64 hex digits", 0},
		{"key_sha256 not hex", key("{name: k, key_sha256: " + strings.Repeat("g", 64) + "}"), "keys[0].key_sha256: not 64 hex digits", 0},
		{"key_sha256 prefixed", key("{name: k, key_sha256: 'sha256:" + digest("a") + "'}"), "keys[0].key_sha256: not 64 hex digits", 0},
		{"key same secret env", key("{name: a, key_env: SET}, {name: b, key_env: SET}"), "keys[1]: the same secret as an earlier key", 0},
		{"key same secret env and digest", key("{name: a, key_env: SET}, {name: b, key_sha256: " + digest("value-1") + "}"), "keys[1]: the same secret as an earlier key", 0},
		{"key same digest case", key("{name: a, key_sha256: " + digest("x") + "}, {name: b, key_sha256: " + strings.ToUpper(digest("x")) + "}"), "keys[1]: the same secret as an earlier key", 0},
		{"key rpm", key("{name: k, key_env: SET, rpm: -1}"), "keys[0].rpm: -1 is negative", 0},
		{"key tpm", key("{name: k, key_env: SET, tpm: -2}"), "keys[0].tpm: -2 is negative", 0},
		{"key routes", key("{name: k, key_env: SET, routes: [r, nope]}"), `keys[0].routes[1]: unknown route "nope"`, 0},

		// Routes.
		{"route name required", okProviders + "routes: [{targets: [{provider: openai}]}]\n", "routes[0].name: required", 0},
		{"route name invalid", okProviders + "routes: [{name: 'a b', targets: [{provider: openai}]}]\n", `routes[0].name: "a b" may hold only letters, digits, '.', '_', ':', '/' and '-'`, 0},
		{"route name dash first", okProviders + "routes: [{name: '-a', targets: [{provider: openai}]}]\n", `routes[0].name: "-a" may hold only`, 0},
		{"route duplicate", okProviders + "routes: [{name: r, targets: [{provider: openai}]}, {name: r, targets: [{provider: openai}]}]\n", `routes[1].name: duplicate route "r"`, 0},
		{"match invalid", route("match: ['gpt-[']"), `routes[0].match[0]: "gpt-[" is not a valid glob`, 0},
		{"match empty", route("match: ['']"), `routes[0].match[0]: "" is not a valid glob`, 0},
		{"sticky", route("sticky: cookie"), `routes[0].sticky: "cookie" is not key, user or header:NAME`, 0},
		{"sticky empty header", route("sticky: 'header:'"), `routes[0].sticky: "header:" is not key, user or header:NAME`, 0},
		{"sticky bad header", route("sticky: 'header:x y'"), `routes[0].sticky: "header:x y" is not key, user or header:NAME`, 0},
		{"targets required", okProviders + "routes: [{name: r}]\n", "routes[0].targets: at least one target is required", 0},
		{"targets empty", okProviders + "routes: [{name: r, targets: []}]\n", "routes[0].targets: at least one target is required", 0},
		{"all weights zero", okProviders + "routes: [{name: r, targets: [{provider: openai, weight: 0}, {provider: openai, weight: 0, cohort: canary}]}]\n", "routes[0].targets: all weights are 0", 0},
		{"too many fallbacks", route("fallbacks: [" + strings.TrimSuffix(strings.Repeat("{provider: openai}, ", 9), ", ") + "]"), "routes[0].fallbacks: 9 fallbacks; at most 8", 0},
		{"fallback unknown provider", route("fallbacks: [{provider: nope}]"), `routes[0].fallbacks[0].provider: unknown provider "nope"`, 0},
		{"flag empty name", route("flags: {'': 1}"), "routes[0].flags: empty flag name", 0},
		{"flag nan", route("flags: {x: .nan}"), "routes[0].flags.x: value cannot be represented as JSON", 0},
		{"flag non-string keys", route("flags: {x: {1: a}}"), "routes[0].flags.x: value cannot be represented as JSON", 0},
		{"route max_body_bytes", route("max_body_bytes: -1"), "routes[0].max_body_bytes: -1 is negative", 0},
		{"contract mode", route("contract: {mode: strict}"), `routes[0].contract.mode: "strict" is not observe or enforce`, 0},
		{"buffer_streams observe", route("contract: {buffer_streams: true}"), "routes[0].contract.buffer_streams: only meaningful with mode: enforce", 0},
		{"schema_file missing", route("contract: {schema_file: nope.json}"), `routes[0].contract.schema_file: "nope.json": no such file or directory`, 0},

		// Targets.
		{"target provider required", okProviders + "routes: [{name: r, targets: [{model: m}]}]\n", "routes[0].targets[0].provider: required", 0},
		{"target provider unknown", okProviders + "routes: [{name: a, targets: [{provider: openai}]}, {name: b, targets: [{provider: x}]}]\n", `routes[1].targets[0].provider: unknown provider "x"`, 0},
		{"target weight negative", okProviders + "routes: [{name: r, targets: [{provider: openai}, {provider: openai, weight: -1, cohort: c}]}]\n", "routes[0].targets[1].weight: -1 is negative", 0},
		{"target weight huge", target("weight: 1000001"), "routes[0].targets[0].weight: 1000001 is above 1000000", 0},
		{"target cohort", target("cohort: 'a b'"), `routes[0].targets[0].cohort: "a b" may hold only letters, digits, '.', '_', ':', '/' and '-'`, 0},
		{"target model quote", target(`model: 'a"b'`), `routes[0].targets[0].model: "a\"b" has characters a model name cannot hold`, 0},
		{"target model newline", target(`model: "a\nb"`), `routes[0].targets[0].model: "a\nb" has characters a model name cannot hold`, 0},

		// Hostile upstream addresses.
		{"metadata ipv4", purl("http://169.254.169.254/latest"), `providers[0].base_url: "http://169.254.169.254/latest" points at a link-local (cloud metadata) address; set allow_link_local: true if this is intended`, 0},
		{"metadata ipv4 port", purl("http://169.254.169.254:80/v1"), "points at a link-local (cloud metadata) address", 0},
		{"metadata ipv4 trailing dot", purl("http://169.254.169.254./v1"), "points at a link-local (cloud metadata) address", 0},
		{"metadata ipv4-mapped", purl("http://[::ffff:169.254.169.254]/v1"), "points at a link-local (cloud metadata) address", 0},
		{"link-local ipv6", purl("http://[fe80::1]/v1"), `providers[0].base_url: "http://[fe80::1]/v1" points at a link-local (cloud metadata) address`, 0},
		{"link-local ipv6 upper", purl("http://[FE80::1]/v1"), "points at a link-local (cloud metadata) address", 0},
		{"link-local ipv6 zone", purl("http://[fe80::1%25eth0]/v1"), "points at a link-local (cloud metadata) address", 0},
		{"aws ipv6 metadata", purl("http://[fd00:ec2::254]/v1"), "points at a link-local (cloud metadata) address", 0},
		{"gcp metadata", purl("http://metadata.google.internal/computeMetadata/v1"), `providers[0].base_url: "http://metadata.google.internal/computeMetadata/v1" points at a link-local`, 0},
		{"gcp metadata fqdn upper", purl("http://METADATA.Google.Internal./v1"), "points at a link-local (cloud metadata) address", 0},
		{"metadata short name", purl("http://metadata/v1"), "points at a link-local (cloud metadata) address", 0},
		{"numeric host decimal", purl("http://2852039166/v1"), `providers[0].base_url: "http://2852039166/v1" has a non-canonical numeric host; write the IP address in dotted-decimal form`, 0},
		{"numeric host hex", purl("http://0xa9fea9fe/v1"), "has a non-canonical numeric host", 0},
		{"numeric host octal", purl("http://0251.0376.0251.0376/v1"), "has a non-canonical numeric host", 0},
		{"numeric host short", purl("http://169.254.43518/v1"), "has a non-canonical numeric host", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.yaml, configs.Options{LookupEnv: env(testEnv), Dir: t.TempDir()})
			if err == nil {
				t.Fatalf("Load(%q) = nil error; want %q", tt.yaml, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%q) = %q; want it to contain %q", tt.yaml, err, tt.want)
			}
			n := tt.n
			if n == 0 {
				n = 1
			}
			if got := len(errList(err)); got != n {
				t.Errorf("Load(%q) gave %d errors; want %d:\n%v", tt.yaml, got, n, err)
			}
		})
	}
}

// TestLoadAllowed lists configs near an error path that must load.
func TestLoadAllowed(t *testing.T) {
	purl := func(u string, extra string) string {
		return "providers: [{name: openai, base_url: '" + u + "'" + extra + "}]\n" + okRoutes
	}
	tests := []struct{ name, yaml string }{
		{"link-local allowed", purl("http://169.254.169.254/v1", ", allow_link_local: true")},
		{"ipv6 link-local allowed", purl("http://[fe80::1]/v1", ", allow_link_local: true")},
		{"loopback upstream", purl("http://127.0.0.1:18090/v1", "")},
		{"ipv6 loopback upstream", purl("http://[::1]:18090/v1", "")},
		{"private upstream", purl("http://10.0.0.7:8000/v1", "")},
		{"hostname that looks hexadecimal", purl("http://cafe.de/v1", "")},
		{"admin ipv6 loopback", okBase + "admin_listen: '[::1]:8081'\n"},
		{"admin localhost", okBase + "admin_listen: 'localhost:8081'\n"},
		{"admin public with token", okBase + "admin_listen: '0.0.0.0:8081'\nadmin_token_env: TOKEN\n"},
		{"listen port 0", okBase + "listen: '127.0.0.1:0'\n"},
		{"redis tls", okBase + "redis_url: 'rediss://:pw@redis.internal:6380/1'\n"},
		{"redis unix", okBase + "redis_url: 'unix:///run/redis.sock'\n"},
		{"sticky key", okProviders + "routes: [{name: r, sticky: key, targets: [{provider: openai}]}]\n"},
		{"sticky header", okProviders + "routes: [{name: r, sticky: 'header:X-Tenant-ID', targets: [{provider: openai}]}]\n"},
		{"one weight zero", okProviders + "routes: [{name: r, targets: [{provider: openai, weight: 0}, {provider: openai, model: m, weight: 1, cohort: canary}]}]\n"},
		{"eight fallbacks", okProviders + "routes: [{name: r, targets: [{provider: openai}], fallbacks: [" + strings.TrimSuffix(strings.Repeat("{provider: openai}, ", 8), ", ") + "]}]\n"},
		{"enforce buffered", okProviders + "routes: [{name: r, targets: [{provider: openai}], contract: {mode: enforce, buffer_streams: true}}]\n"},
		{"body sample zero", okBase + "capture: {body_sample_rate: 0}\n"},
		{"nested flags", okProviders + "routes: [{name: r, targets: [{provider: openai}], flags: {a: {b: [1, 2.5, x, true, null]}, '1': 2}}]\n"},
		{"document marker", "---\n" + okBase},
		{"route name with slash", okProviders + "routes: [{name: 'team/bot:v2', targets: [{provider: openai}]}]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustLoad(t, tt.yaml, configs.Options{LookupEnv: env(map[string]string{"TOKEN": "t"})})
		})
	}
}

func TestLoadReportsEveryError(t *testing.T) {
	y := `providers:
  - name: openai
    base_url: https://api.openai.com/v1
routes:
  - name: a
    targets: [{provider: openai}]
  - name: b
    sticky: cookie
    targets: [{provider: x}]
keys:
  - {name: k, key_env: MISSING_KEY}
`
	_, err := load(t, y, configs.Options{})
	want := []string{
		`routes[1].sticky: "cookie" is not key, user or header:NAME`,
		`routes[1].targets[0].provider: unknown provider "x"`,
		`keys[0].key_env: environment variable MISSING_KEY is not set`,
	}
	got := errList(err)
	if len(got) != len(want) {
		t.Fatalf("Load gave %d errors; want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if got[i].Error() != w {
			t.Errorf("error %d = %q; want %q", i, got[i], w)
		}
	}
	// Decoding collects every type error and unknown key too, each with its line.
	_, err = load(t, okBase+"server:\n  read_timeout: 3x\n  idel_timeout: 1s\nkeys: [{name: k, rpm: many}]\n", configs.Options{})
	for _, w := range []string{`server.read_timeout: "3x" is not a duration like "30s" at line 4`, `server.idel_timeout: unknown field (did you mean "idle_timeout"?) at line 5`, `keys[0].rpm: expected an integer, got "many" at line 6`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Load = %q; want it to contain %q", err, w)
		}
	}
}

// The golden config breaks one rule of each kind; its whole error text is
// part of the CLI's interface (`cairn check` prints it).
const goldenConfig = `listen: localhost
admin_listen: 0.0.0.0:8081
redis_url: http://cairn:hunter2@redis:6379
providers:
  - name: openai
    base_url: http://169.254.169.254/v1
    api_key_env: OPENAI_API_KEY
  - name: openai
    base_url: api.example.com
routes:
  - name: support-bot
    sticky: cookie
    targets:
      - { provider: openai, weight: -1 }
      - { provider: anthropic, cohort: canary }
    contract: { mode: strict, schema_file: schemas/none.json }
keys:
  - { name: checkout, key_env: CHECKOUT_KEY, rpm: -5, routes: [billing] }
  - { name: search }
detection: { error_rate: 2, latency_p99_ratio: 0.9 }
masking: { custom: [ { name: iin, pattern: 'x*' } ] }
`

func TestLoadErrorsGolden(t *testing.T) {
	_, err := load(t, goldenConfig, configs.Options{Dir: t.TempDir()})
	got := err.Error() + "\n"
	golden := filepath.Join("testdata", "errors.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, rerr := os.ReadFile(golden)
	if rerr != nil {
		t.Fatalf("read golden file (run go test -run TestLoadErrorsGolden -update): %v", rerr)
	}
	if got != string(want) {
		t.Errorf("Load error text differs from %s (rerun with -update if intended)\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
	if strings.Contains(got, "hunter2") {
		t.Errorf("error text holds the redis password:\n%s", got)
	}
}

func TestLoadSecretsNeverInErrors(t *testing.T) {
	const secret = "sk-CANARY-7f3a9c1e5b"
	const password = "hunter2-CANARY"
	e := env(map[string]string{"OPENAI_API_KEY": secret, "ADMIN": secret + "-admin", "K1": secret + "-k1", "K2": secret + "-k1"})
	keys := "keys: [{name: a, key_env: K1}, {name: b, key_env: K2}, {name: c, key_env: UNSET}]\n"
	prov := "providers:\n  - {name: openai, base_url: 'https://api.openai.com/v1', api_key_env: OPENAI_API_KEY}\n"
	for _, redis := range []string{
		"http://user:" + password + "@h:6379",
		"redis//user:" + password + "@h:6379",
		"redis:/user:" + password + "@h:6379",
		"//user:" + password + "@h:6379",
		"user:" + password + "@h:6379",
		"redis://user:" + password + "@h:port",
		"redis://user:" + password + "@h:6379/%zz",
		"redis://user:pa/ss" + password + "@h:6379",
		"h:6379?password=" + password,
		"tcp://h:6379/0?password=" + password,
	} {
		y := "admin_token_env: ADMIN\nadmin_listen: '0.0.0.0:1'\nredis_url: '" + redis + "'\n" + prov +
			"  - {name: bad, base_url: 'https://h/v1?key=" + password + "'}\n" +
			"  - {name: bad2, base_url: 'h/v1?key=" + password + "'}\n" +
			"  - {name: bad3, base_url: 'https://u:" + password + "@h/v1'}\n" +
			okRoutes + keys +
			"notify: {webhooks: [{url: 'hooks.example.com/services/" + password + "', headers: {X-Token: " + password + "}}]}\n"
		_, err := load(t, y, configs.Options{LookupEnv: e})
		msg := err.Error()
		if strings.Contains(msg, secret) || strings.Contains(msg, password) {
			t.Errorf("Load with redis_url %q = %q; holds a secret", redis, msg)
		}
		if !strings.Contains(msg, "redis_url: ") || !strings.Contains(msg, "keys[2].key_env: environment variable UNSET is not set") {
			t.Errorf("Load with redis_url %q = %q; want the redis_url and UNSET errors", redis, msg)
		}
	}
	for _, s := range []string{"redis://:" + password + "@h:6379/0", "redis://u:" + password + "@h/0?x=" + password, "x?token=" + password, password + "@h"} {
		if got := configs.RedactURL(s); strings.Contains(got, password) {
			t.Errorf("RedactURL(%q) = %q; holds the password", s, got)
		}
	}

	// A config that loads keeps its secrets out of its JSON, its state and
	// its revision input.
	c := mustLoad(t, "admin_token_env: ADMIN\n"+prov+okRoutes+"keys: [{name: a, key_env: K1}]\n", configs.Options{LookupEnv: e})
	if c.Providers[0].APIKey != secret || c.AdminToken != secret+"-admin" {
		t.Errorf("Load did not read the secrets: %q, %q", c.Providers[0].APIKey, c.AdminToken)
	}
	if c.Keys[0].Digest != sha256.Sum256([]byte(secret+"-k1")) {
		t.Errorf("keys[0].Digest is not the SHA-256 of the key")
	}
	cj, _ := json.Marshal(c)
	sj, _ := json.Marshal(c.State())
	d := c.Keys[0].Digest
	for _, b := range [][]byte{cj, sj} {
		if s := string(b); strings.Contains(s, secret) || strings.Contains(s, hex.EncodeToString(d[:])) {
			t.Errorf("JSON holds a secret or a key digest: %s", s)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, okProviders+"routes: [{name: r, targets: [{provider: openai}, {provider: openai, model: m, cohort: canary}], fallbacks: [{provider: openai}]}]\n", configs.Options{})
	s := time.Second
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, "127.0.0.1:8080"},
		{"admin_listen", c.AdminListen, "127.0.0.1:8081"},
		{"data_dir", c.DataDir, "./cairn-data"},
		{"redis_url", c.RedisURL, ""},
		{"server.max_header_bytes", c.Server.MaxHeaderBytes, 32 << 10},
		{"server.max_body_bytes", c.Server.MaxBodyBytes, 8 << 20},
		{"server.read_timeout", c.Server.ReadTimeout.D(), 10 * s},
		{"server.idle_timeout", c.Server.IdleTimeout.D(), 60 * s},
		{"server.write_timeout", c.Server.WriteTimeout.D(), 60 * s},
		{"server.drain_timeout", c.Server.DrainTimeout.D(), 30 * s},
		{"server.max_concurrency", c.Server.MaxConcurrency, 10000},
		{"providers[0].timeout", c.Providers[0].Timeout.D(), 60 * s},
		{"providers[0].connect_timeout", c.Providers[0].ConnectTimeout.D(), 3 * s},
		{"providers[0].stream_idle_timeout", c.Providers[0].StreamIdleTimeout.D(), 60 * s},
		{"providers[0].stream_max_duration", c.Providers[0].StreamMaxDuration.D(), 10 * time.Minute},
		{"providers[0].max_response_bytes", c.Providers[0].MaxResponseBytes, 32 << 20},
		{"providers[0].max_conns", c.Providers[0].MaxConns, 1024},
		{"providers[0].allow_link_local", c.Providers[0].AllowLinkLocal, false},
		{"providers[0].api_key", c.Providers[0].APIKey, ""},
		{"routes[0].sticky", c.Routes[0].Sticky, "user"},
		{"routes[0].contract.mode", c.Routes[0].Contract.Mode, configs.ModeObserve},
		{"routes[0].contract.schema", c.Routes[0].Contract.Schema == nil, true},
		{"routes[0].auto_rollback", c.Routes[0].AutoRollback, false},
		{"routes[0].targets[0].cohort", c.Routes[0].Targets[0].Cohort, configs.DefaultCohort},
		{"routes[0].targets[0].weight", c.Routes[0].Targets[0].W(), 1},
		{"routes[0].targets[0].model", c.Routes[0].Targets[0].Model, ""},
		{"routes[0].targets[1].cohort", c.Routes[0].Targets[1].Cohort, "canary"},
		{"routes[0].fallbacks[0].cohort", c.Routes[0].Fallbacks[0].Cohort, "stable"},
		{"ratelimit.redis_timeout", c.RateLimit.RedisTimeout.D(), 250 * time.Millisecond},
		{"ratelimit.replicas", c.RateLimit.Replicas, 1},
		{"detection.window", c.Detection.Window.D(), 30 * s},
		{"detection.min_requests", c.Detection.MinRequests, 20},
		{"detection.error_rate", c.Detection.ErrorRate, configs.Threshold{Page: 0.2}},
		{"detection.contract_failure_rate", c.Detection.ContractFailureRate, configs.Threshold{Page: 0.1}},
		{"detection.latency_p99_ratio", c.Detection.LatencyP99Ratio, configs.Threshold{Page: 2.0}},
		{"detection.tokens_per_success_ratio", c.Detection.TokensPerSuccessRatio, configs.Threshold{Page: 1.3}},
		{"detection.upstream_429_rate", c.Detection.Upstream429Rate, configs.Threshold{Page: 0.5}},
		{"detection.lookback", c.Detection.Lookback.D(), 24 * time.Hour},
		{"detection.disabled", c.Detection.Disabled, false},
		{"capture.body_sample_rate", c.Capture.SampleRate(), 1.0},
		{"capture.queue_size", c.Capture.QueueSize, 65536},
		{"capture.max_file_bytes", c.Capture.MaxFileBytes, int64(64 << 20)},
		{"capture.retention_days", c.Capture.RetentionDays, 7},
		{"capture.redis_stream_max_len", c.Capture.RedisStreamMaxLen, int64(100000)},
		{"capture.memory", c.Capture.Memory, 10000},
		{"tracing.sample_ratio", c.Tracing.SampleRatio, 1.0},
		{"tracing.otlp_endpoint", c.Tracing.OTLPEndpoint, ""},
		{"admin_token", c.AdminToken, ""},
		{"keys", len(c.Keys), 0},
		{"path", c.Path, ""},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("default %s = %v; want %v", ck.name, ck.got, ck.want)
		}
	}
	if !strings.HasPrefix(c.Revision, "rev_") || len(c.Revision) != len("rev_")+12 {
		t.Errorf("Revision = %q; want rev_ and 12 hex digits", c.Revision)
	}

	// Explicit values are kept, and an explicit weight of 0 stays 0.
	c = mustLoad(t, okProviders+"routes: [{name: r, targets: [{provider: openai, weight: 0}, {provider: openai, model: m, weight: 7, cohort: canary}]}]\ndetection: {window: 10s, min_requests: 10}\ncapture: {body_sample_rate: 0}\n", configs.Options{})
	if w := c.Routes[0].Targets[0].W(); w != 0 {
		t.Errorf("targets[0].W() = %d; want 0", w)
	}
	if w := c.Routes[0].Targets[1].W(); w != 7 {
		t.Errorf("targets[1].W() = %d; want 7", w)
	}
	if c.Detection.Window.D() != 10*s || c.Detection.MinRequests != 10 || c.Detection.ErrorRate != (configs.Threshold{Page: 0.2}) {
		t.Errorf("detection = %+v; want window 10s, min_requests 10 and the other defaults", c.Detection)
	}
	if r := c.Capture.SampleRate(); r != 0 {
		t.Errorf("capture.SampleRate() = %v; want 0", r)
	}
	if g := c.Route("r").Globs; g != nil {
		t.Errorf("Globs = %v; want nil without match", g)
	}
	if c.Route("nope") != nil || c.Provider("nope") != nil || c.Provider("openai") != &c.Providers[0] {
		t.Errorf("Route/Provider lookups are wrong")
	}
}

func TestLoadKeySHA256(t *testing.T) {
	sum := sha256.Sum256([]byte("demo-key-checkout"))
	lower := hex.EncodeToString(sum[:])
	for _, tt := range []struct{ name, in string }{
		{"lower", lower},
		{"upper", strings.ToUpper(lower)},
		{"quoted", `"` + lower + `"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, okBase+"keys: [{name: k, key_sha256: "+tt.in+"}]\n", configs.Options{})
			if c.Keys[0].Digest != sum {
				t.Errorf("Digest of key_sha256 %s = %x; want %x", tt.in, c.Keys[0].Digest, sum)
			}
			if c.Keys[0].KeySHA256 != strings.Trim(tt.in, `"`) {
				t.Errorf("KeySHA256 = %q; want the file's text", c.Keys[0].KeySHA256)
			}
		})
	}
	// key_env and key_sha256 of the same key give the same digest.
	c := mustLoad(t, okBase+"keys: [{name: k, key_env: K}]\n", configs.Options{LookupEnv: env(map[string]string{"K": "demo-key-checkout"})})
	if c.Keys[0].Digest != sum {
		t.Errorf("Digest of key_env = %x; want %x", c.Keys[0].Digest, sum)
	}
}

func TestLoadAliasBomb(t *testing.T) {
	// "Billion laughs": 9 levels of 9 aliases expand to 9^9 strings.
	var b strings.Builder
	b.WriteString(okProviders + "routes:\n  - name: r\n    targets: [{provider: openai}]\n    flags:\n")
	b.WriteString(`      l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "      l%d: &l%d [%s*l%d]\n", i, i, strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 8), i-1)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := load(t, b.String(), configs.Options{})
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Errorf("Load(alias bomb) = %v; want an excessive aliasing error", err)
	}
	if took > 2*time.Second {
		t.Errorf("Load(alias bomb) took %v; want it refused quickly", took)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("Load(alias bomb) allocated %d MiB; want under 64", alloc>>20)
	}

	// A few honest aliases are fine.
	c := mustLoad(t, okProviders+"routes:\n  - name: r\n    targets: [&t {provider: openai}]\n    fallbacks: [*t, *t]\n", configs.Options{})
	if len(c.Routes[0].Fallbacks) != 2 {
		t.Errorf("fallbacks via aliases = %d; want 2", len(c.Routes[0].Fallbacks))
	}
}

func TestLoadSizeLimit(t *testing.T) {
	big := okBase + "release: '" + strings.Repeat("x", configs.MaxFileBytes) + "'\n"
	_, err := load(t, big, configs.Options{})
	if want := fmt.Sprintf("config: file is larger than %d bytes", configs.MaxFileBytes); err == nil || err.Error() != want {
		t.Errorf("Load(%d bytes) = %v; want %q", len(big), err, want)
	}
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := configs.LoadFile(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("LoadFile(big) = %v; want a size error", err)
	}
	if _, err := configs.LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "read config: ") {
		t.Errorf("LoadFile(missing) = %v; want a read error", err)
	}
}

func TestLoadSchemaFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ok.json", `{"type":"object","required":["answer"],"properties":{"answer":{"type":"string"},"n":{"$ref":"#/$defs/n"}},"$defs":{"n":{"type":"integer"}}}`)
	write("broken.json", `{"type": "object",`)
	write("trailing.json", `{"type": "object"} {}`)
	write("remote.json", `{"$ref": "https://example.com/x.json"}`)
	write("file.json", `{"properties": {"a": {"$ref": "file:///etc/passwd"}}}`)
	write("relative.json", `{"$ref": "ok.json"}`)
	write("meta.json", `{"$schema": "https://example.com/my-meta-schema"}`)
	write("badkeyword.json", `{"type": 12}`)
	write("huge.json", `{"description": "`+strings.Repeat("x", configs.MaxSchemaFileBytes)+`"}`)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := func(file string) string {
		return okProviders + "routes: [{name: a, targets: [{provider: openai}]}, {name: r, targets: [{provider: openai}], contract: {schema_file: '" + file + "'}}]\n"
	}
	const f = `routes[1].contract.schema_file: `
	tests := []struct{ file, want string }{
		{"missing.json", f + `"missing.json": no such file or directory`},
		{"broken.json", f + `"broken.json": invalid JSON: unexpected EOF`},
		{"trailing.json", f + `"trailing.json": invalid JSON: trailing data after the schema`},
		{"remote.json", f + `"remote.json": compile schema:`},
		{"file.json", f + `"file.json": compile schema:`},
		{"relative.json", f + `"relative.json": compile schema:`},
		{"meta.json", f + `"meta.json": compile schema:`},
		{"badkeyword.json", f + `"badkeyword.json": compile schema:`},
		{"huge.json", f + `"huge.json": larger than 1048576 bytes`},
		{"adir", f + `"adir": not a regular file`},
		{"/dev/zero", f + `"/dev/zero": not a regular file`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := load(t, cfg(tt.file), configs.Options{Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(schema_file %s) = %v; want %q", tt.file, err, tt.want)
			}
			switch tt.file {
			case "remote.json", "file.json", "relative.json", "meta.json":
				if !strings.Contains(err.Error(), configs.ErrExternalRef.Error()) {
					t.Errorf("Load(schema_file %s) = %v; want it to say %q", tt.file, err, configs.ErrExternalRef)
				}
			}
		})
	}

	// A valid schema compiles, relative to Options.Dir, and its digest is
	// that of the file.
	c := mustLoad(t, cfg("ok.json"), configs.Options{Dir: dir})
	ct := c.Route("r").Contract
	data, _ := os.ReadFile(filepath.Join(dir, "ok.json"))
	sum := sha256.Sum256(data)
	if ct.Schema == nil || ct.SchemaSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("contract = %+v; want a compiled schema with digest %x", ct, sum)
	}
	for _, tc := range []struct {
		doc string
		ok  bool
	}{{`{"answer":"yes","n":3}`, true}, {`{"n":3}`, false}, {`{"answer":"yes","n":"3"}`, false}} {
		var v any
		_ = json.Unmarshal([]byte(tc.doc), &v)
		if err := ct.Schema.Validate(v); (err == nil) != tc.ok {
			t.Errorf("Schema.Validate(%s) = %v; want ok=%v", tc.doc, err, tc.ok)
		}
	}
	// An absolute path works wherever Dir points.
	mustLoad(t, cfg(filepath.Join(dir, "ok.json")), configs.Options{Dir: t.TempDir()})

	// LoadFile resolves against the config file's directory.
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(cfg("ok.json")), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := configs.LoadFile(filepath.Join(dir, "c.yaml"))
	if err != nil || c.Route("r").Contract.Schema == nil || c.Path != filepath.Join(dir, "c.yaml") {
		t.Fatalf("LoadFile = %v, %v; want a compiled schema and Path set", c, err)
	}
}

func TestCompileSchema(t *testing.T) {
	for _, tt := range []struct {
		name, doc string
		ext       bool
	}{
		{"http ref", `{"$ref":"http://example.com/s.json"}`, true},
		{"https ref", `{"$ref":"https://example.com/x.json"}`, true},
		{"file ref", `{"$ref":"file:///etc/passwd"}`, true},
		{"relative ref", `{"$ref":"other.json#/a"}`, true},
		{"id then relative ref", `{"$id":"https://evil.example/a.json","$ref":"b.json"}`, true},
		{"dynamic ref remote", `{"$dynamicRef":"https://example.com/x.json#meta"}`, true},
		{"not json", `{`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configs.CompileSchema([]byte(tt.doc), "mem://cairn/test.json")
			if err == nil {
				t.Fatalf("CompileSchema(%s) = nil; want an error", tt.doc)
			}
			if got := errors.Is(err, configs.ErrExternalRef) || strings.Contains(err.Error(), configs.ErrExternalRef.Error()); got != tt.ext {
				t.Errorf("CompileSchema(%s) = %v; external-ref error = %v, want %v", tt.doc, err, got, tt.ext)
			}
		})
	}
	if _, err := configs.CompileSchema([]byte(`{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"a":{"type":"string"}},"$ref":"#/$defs/a"}`), "mem://cairn/test.json"); err != nil {
		t.Errorf("CompileSchema(local ref) = %v; want nil", err)
	}
}

// TestRevision documents what the revision depends on. It hashes the config
// as decoded and defaulted (JSON form) plus schema file digests, so:
//   - the same bytes give the same revision on every load, replica and path;
//   - comments, formatting, key order and spelling out a default do not change it;
//   - any effective change (a weight, a key limit, an env var's name, a
//     schema file's contents) changes it;
//   - secret values do not influence it: provider keys, gateway keys from
//     key_env and the admin token are excluded, so rotating a secret in the
//     environment keeps the revision (rotating a key_sha256 changes it,
//     since the digest is written in the file); webhook headers, which may
//     hold tokens, are excluded too.
func TestRevision(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.json"), []byte(`{"type":"object"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	base := `providers:
  - {name: openai, base_url: 'https://api.openai.com/v1', api_key_env: OPENAI_API_KEY}
keys:
  - {name: k, key_env: K, rpm: 60}
routes:
  - name: r
    targets:
      - {provider: openai, model: a, weight: 80}
      - {provider: openai, model: b, weight: 20, cohort: canary}
    contract: {schema_file: s.json}
notify: {webhooks: [{url: 'https://h/hook', headers: {X-Token: one}}]}
`
	e1 := map[string]string{"OPENAI_API_KEY": "sk-1", "K": "key-1"}
	e2 := map[string]string{"OPENAI_API_KEY": "sk-2", "K": "key-2", "K2": "key-1"}
	rev := func(y string, e map[string]string, d string) string {
		t.Helper()
		return mustLoad(t, y, configs.Options{LookupEnv: env(e), Dir: d}).Revision
	}
	r0 := rev(base, e1, dir)
	same := []struct{ name, yaml string }{
		{"same bytes", base},
		{"comments and blank lines", "# hello\n\n" + strings.ReplaceAll(base, "\n", " # c\n")},
		{"key order", strings.Replace(base, "{name: k, key_env: K, rpm: 60}", "{rpm: 60, key_env: K, name: k}", 1)},
		{"explicit defaults", base + "listen: 127.0.0.1:8080\ndetection: {window: 30s, error_rate: 0.2}\n"},
		{"explicit cohort", strings.Replace(base, "weight: 80}", "weight: 80, cohort: stable}", 1)},
		{"webhook header value", strings.Replace(base, "X-Token: one", "X-Token: two", 1)},
	}
	for _, tt := range same {
		if r := rev(tt.yaml, e1, dir); r != r0 {
			t.Errorf("revision after %s = %s; want %s", tt.name, r, r0)
		}
	}
	if r := rev(base, e2, dir); r != r0 {
		t.Errorf("revision with other secret values = %s; want %s (secrets excluded)", r, r0)
	}
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, "s.json"), []byte(`{"type":"object"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := rev(base, e1, dir2); r != r0 {
		t.Errorf("revision from another directory with the same schema = %s; want %s", r, r0)
	}

	differ := []struct{ name, yaml string }{
		{"weight", strings.Replace(base, "weight: 20", "weight: 21", 1)},
		{"model", strings.Replace(base, "model: b", "model: c", 1)},
		{"key rpm", strings.Replace(base, "rpm: 60", "rpm: 61", 1)},
		{"key env name", strings.Replace(base, "key_env: K,", "key_env: K2,", 1)},
		{"release", base + "release: x\n"},
		{"webhook url", strings.Replace(base, "https://h/hook", "https://h/hook2", 1)},
	}
	seen := map[string]string{r0: "base"}
	for _, tt := range differ {
		r := rev(tt.yaml, e2, dir)
		if prev, ok := seen[r]; ok {
			t.Errorf("revision after %s change = %s, same as %s", tt.name, r, prev)
		}
		seen[r] = tt.name
	}
	if err := os.WriteFile(filepath.Join(dir2, "s.json"), []byte(`{"type":"object","required":["a"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := rev(base, e1, dir2); r == r0 {
		t.Errorf("revision after a schema file change = %s; want a new one", r)
	}
}

// Example configs each load with LoadFile, given every variable they name.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("Glob(*.yaml) = %v, %v; want the example configs", files, err)
	}
	envRef := regexp.MustCompile(`\b(?:api_key_env|key_env|admin_token_env):\s*([A-Z_][A-Z0-9_]*)\b`)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{}
			for _, m := range envRef.FindAllSubmatch(data, -1) {
				name := string(m[1])
				vars[name] = "example-secret-" + name
				t.Setenv(name, vars[name])
			}
			c, err := configs.LoadFile(f)
			if err != nil {
				t.Fatalf("LoadFile(%s) = %v", f, err)
			}
			for _, r := range c.Routes {
				if r.Contract.SchemaFile != "" && r.Contract.Schema == nil {
					t.Errorf("%s: route %s: schema not compiled", f, r.Name)
				}
			}
			// Without the environment, each variable is reported by name.
			_, err = configs.Load(data, configs.Options{Dir: ".", LookupEnv: env(nil)})
			if len(vars) == 0 {
				if err != nil {
					t.Errorf("Load(%s) without env = %v; it names no variable", f, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load(%s) without env = nil; want errors naming %v", f, vars)
			}
			for name := range vars {
				if !strings.Contains(err.Error(), "environment variable "+name+" is not set") {
					t.Errorf("Load(%s) without env = %v; want it to name %s", f, err, name)
				}
			}
		})
	}
}

func TestDemoConfig(t *testing.T) {
	c, err := configs.LoadFile("demo.yaml")
	if err != nil {
		t.Fatalf("LoadFile(demo.yaml) = %v", err)
	}
	if c.Listen != "127.0.0.1:18080" || c.AdminListen != "127.0.0.1:18081" || c.DataDir != "./cairn-data" || c.Release != "demo-1" || c.RedisURL != "" || c.AdminTokenEnv != "" {
		t.Errorf("demo.yaml top level = %s %s %s %s %q %q", c.Listen, c.AdminListen, c.DataDir, c.Release, c.RedisURL, c.AdminTokenEnv)
	}
	for _, p := range c.Providers {
		if p.APIKeyEnv != "" {
			t.Errorf("demo.yaml provider %s needs %s; the demo needs no secret", p.Name, p.APIKeyEnv)
		}
	}
	if p := c.Provider("mock-primary"); p == nil || p.BaseURL != "http://127.0.0.1:18090/v1" {
		t.Errorf("mock-primary = %+v", p)
	}
	if p := c.Provider("mock-canary"); p == nil || p.BaseURL != "http://127.0.0.1:18091/v1" {
		t.Errorf("mock-canary = %+v", p)
	}
	for _, k := range []struct{ name, plain string }{
		{"checkout", "demo-key-checkout"}, {"search", "demo-key-search"}, {"batch", "demo-key-batch"},
	} {
		var got *configs.Key
		for i := range c.Keys {
			if c.Keys[i].Name == k.name {
				got = &c.Keys[i]
			}
		}
		if got == nil || got.KeyEnv != "" || got.Digest != sha256.Sum256([]byte(k.plain)) {
			t.Errorf("demo key %s is not the SHA-256 of %q: %+v", k.name, k.plain, got)
		}
	}
	r := c.Route("support-bot")
	if r == nil {
		t.Fatal("demo.yaml has no support-bot route")
	}
	if r.Prompt.Version != "v17" || r.Prompt.System != "You are a refund assistant. Answer in JSON." || r.Flags["strict_json"] != true || r.Sticky != "user" || !r.AutoRollback {
		t.Errorf("support-bot = %+v", r)
	}
	if len(r.Targets) != 2 ||
		r.Targets[0].Provider != "mock-primary" || r.Targets[0].Model != "gpt-4o-mini" || r.Targets[0].W() != 80 || r.Targets[0].Cohort != "stable" ||
		r.Targets[1].Provider != "mock-canary" || r.Targets[1].Model != "gpt-4.1-mini" || r.Targets[1].W() != 20 || r.Targets[1].Cohort != "canary" {
		t.Errorf("support-bot targets = %+v", r.Targets)
	}
	if len(r.Fallbacks) != 1 || r.Fallbacks[0].Provider != "mock-primary" || r.Fallbacks[0].Model != "gpt-4o-mini" {
		t.Errorf("support-bot fallbacks = %+v", r.Fallbacks)
	}
	if r.Contract.Mode != configs.ModeObserve || r.Contract.SchemaFile != "schemas/refund.json" || r.Contract.Schema == nil {
		t.Errorf("support-bot contract = %+v", r.Contract)
	}
	s := c.Route("search")
	if s == nil || len(s.Globs) != 1 || s.Globs[0] != "gpt-4o*" || len(s.Targets) != 1 || s.Targets[0].Provider != "mock-primary" || s.Targets[0].Model != "" {
		t.Errorf("search = %+v", s)
	}
	if c.Detection.Window.D() != 10*time.Second || c.Detection.MinRequests != 10 {
		t.Errorf("detection = %+v", c.Detection)
	}

	// The mock's default reply satisfies the refund schema; broken ones do not.
	for _, tc := range []struct {
		doc string
		ok  bool
	}{
		{`{"answer":"ok","confidence":0.9}`, true},
		{`{"answer":"ok","confidence":0}`, true},
		{`{"answer":"ok"}`, false},
		{`{"confidence":0.9}`, false},
		{`{"answer":"ok","confidence":1.5}`, false},
		{`{"answer":"ok","confidence":-0.1}`, false},
		{`{"answer":7,"confidence":0.9}`, false},
		{`{"answer":"ok","confidence":"high"}`, false},
		{`"ok"`, false},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.doc), &v); err != nil {
			t.Fatal(err)
		}
		if err := r.Contract.Schema.Validate(v); (err == nil) != tc.ok {
			t.Errorf("refund.json Validate(%s) = %v; want ok=%v", tc.doc, err, tc.ok)
		}
	}
}
