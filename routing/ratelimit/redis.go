package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis defaults.
const (
	DefaultRedisTimeout = 25 * time.Millisecond
	DefaultPrefix       = "cairn:rl:"
	// chargeMarkerTTL is how long a charged request ID is remembered.
	chargeMarkerTTL = 2 * time.Minute
	// logEvery bounds the "Redis failing" log lines.
	logEvery = 10 * time.Second
)

// checkScript counts one request in the key's current window, atomically,
// on Redis's clock. KEYS[1] is the key's hash {w: window, r: requests,
// t: tokens}; ARGV are RPM and TPM (0: unlimited). It returns {kind (0
// admitted, 1 requests, 2 tokens), requests, tokens, ms left in window}.
// The hash always carries a TTL: the window's end plus one minute.
var checkScript = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local win = math.floor(now / 60000)
local reset = (win + 1) * 60000 - now
local v = redis.call('HMGET', KEYS[1], 'w', 'r', 't')
local cur = tonumber(v[1]) == win
local r, tk = 0, 0
if cur then
  r = tonumber(v[2]) or 0
  tk = tonumber(v[3]) or 0
end
local kind = 0
if rpm > 0 and r >= rpm then
  kind = 1
elseif tpm > 0 and tk >= tpm then
  kind = 2
else
  r = r + 1
  if cur then
    redis.call('HINCRBY', KEYS[1], 'r', 1)
  else
    redis.call('HSET', KEYS[1], 'w', win, 'r', 1, 't', 0)
  end
  redis.call('PEXPIRE', KEYS[1], reset + 60000)
end
return {kind, r, tk, reset}
`)

// chargeScript adds ARGV[1] tokens to the key's current window once per
// request: KEYS[2], when given, is the request's marker, set with NX and a
// TTL of ARGV[2] ms; a marker already present means the request was
// charged. Returns 1 when charged, 0 for a duplicate.
var chargeScript = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
if #KEYS > 1 then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then
    return 0
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local win = math.floor(now / 60000)
local reset = (win + 1) * 60000 - now
if tonumber(redis.call('HGET', KEYS[1], 'w')) == win then
  redis.call('HINCRBY', KEYS[1], 't', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'w', win, 'r', 0, 't', ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], reset + 60000)
return 1
`)

// RedisOptions configure a Redis limiter.
type RedisOptions struct {
	// Timeout is the deadline of one Redis call (Check or Charge). Default
	// 25ms. The client must honour it: see NewRedis.
	Timeout time.Duration
	// Replicas is the number of gateway replicas sharing the budget. While
	// Redis fails, each replica admits limit/Replicas (at least 1) locally.
	// Default 1.
	Replicas int
	// Logger receives at most one line per ~10s while Redis fails, and one
	// when it recovers. Default: discard.
	Logger *slog.Logger
	// Prefix starts every Redis key. Default "cairn:rl:".
	Prefix string
}

// Redis limits keys with counters in Redis, so every replica sharing the
// Redis enforces one budget. One Check is one EVALSHA round trip running
// one Lua script (exact under any concurrency). When Redis errs or misses
// the deadline, the decision is made by a local Memory limiter with a
// per-replica share of the limits (or refused, for FailClosed keys), the
// error is counted and logged without flooding, and the next call tries
// Redis again, so shared limiting resumes by itself.
//
// Redis is safe for concurrent use and lives as long as the gateway. It
// starts no goroutines.
type Redis struct {
	c        redis.UniversalClient
	timeout  time.Duration
	replicas int
	log      *slog.Logger
	prefix   string

	local *Memory // decides while Redis fails
	m     metrics
	keys  sync.Map // key name -> redis key

	errs       atomic.Uint64
	degraded   atomic.Bool
	lastLog    atomic.Int64 // unix ns of the last failure log line
	suppressed atomic.Uint64
}

// NewRedis returns a limiter over c. The per-call deadline is a
// context.WithTimeout(ctx, Timeout), which go-redis honours only when the
// client was built with ContextTimeoutEnabled: true; build it with
// MaxRetries: -1 as well, or a hung Redis costs retries × timeouts.
// NewClient returns such a client.
func NewRedis(c redis.UniversalClient, o RedisOptions) *Redis {
	if o.Timeout <= 0 {
		o.Timeout = DefaultRedisTimeout
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	return &Redis{
		c: c, timeout: o.Timeout, replicas: o.Replicas, log: o.Logger, prefix: o.Prefix,
		local: NewMemory(time.Now),
	}
}

// NewClient returns a go-redis client for a redis:// or rediss:// URL set
// up for the gateway's hot path: ContextTimeoutEnabled (the caller's
// deadline bounds every call), no command retries, one dial attempt, 1s
// dial/read/write timeouts and a pool sized for a gateway (64 or 16 per
// CPU, whichever is larger). Settings given in the URL's query
// (dial_timeout, read_timeout, write_timeout, pool_size, pool_timeout)
// win, except retries, which stay off. Errors never contain the URL (it
// may hold a password).
func NewClient(rawURL string) (*redis.Client, error) {
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL, password included
		}
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	var q url.Values
	if u, err := url.Parse(rawURL); err == nil {
		q = u.Query()
	}
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1
	o.DialerRetries = 1
	if !q.Has("dial_timeout") {
		o.DialTimeout = time.Second
	}
	if !q.Has("read_timeout") {
		o.ReadTimeout = time.Second
	}
	if !q.Has("write_timeout") {
		o.WriteTimeout = time.Second
	}
	if !q.Has("pool_size") {
		o.PoolSize = max(64, 16*runtime.GOMAXPROCS(0))
	}
	if !q.Has("pool_timeout") {
		o.PoolTimeout = time.Second
	}
	if o.ClientName == "" {
		o.ClientName = "cairn"
	}
	return redis.NewClient(o), nil
}

// Check counts one request for key in the shared window and reports
// whether it may proceed (see Memory.Check for the rules). It takes at
// most about Timeout: when Redis fails or is slow, the decision is local
// and Degraded is set.
func (l *Redis) Check(ctx context.Context, key string, lim Limits, _ string) Decision {
	if lim.RPM <= 0 && lim.TPM <= 0 {
		return Decision{Allowed: true}
	}
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	v, err := checkScript.Run(cctx, l.c, []string{l.redisKey(key)}, lim.RPM, lim.TPM).Int64Slice()
	cancel()
	if err == nil && len(v) != 4 {
		err = fmt.Errorf("rate limit script returned %d values; want 4", len(v))
	}
	if err != nil {
		l.failed(ctx, err)
		return l.fallback(key, lim)
	}
	l.ok()
	kind := ""
	switch v[0] {
	case 1:
		kind = KindRequests
	case 2:
		kind = KindTokens
	}
	d := decide(lim, kind, int(v[1]), int(v[2]), time.Duration(v[3])*time.Millisecond)
	if !d.Allowed {
		l.m.countLimited(key, d.Kind)
	}
	return d
}

// Charge adds tokens of actual usage to key's shared window, once per
// reqID (remembered for 2 minutes; an empty reqID is never deduplicated).
// When Redis fails the tokens are charged to the local limiter instead.
// It does nothing when TPM is 0.
func (l *Redis) Charge(ctx context.Context, key string, lim Limits, reqID string, tokens int) {
	if lim.TPM <= 0 || tokens <= 0 {
		return
	}
	rk := l.redisKey(key)
	keys := []string{rk}
	if reqID != "" {
		keys = append(keys, rk+":c:"+reqID)
	}
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	err := chargeScript.Run(cctx, l.c, keys, tokens, chargeMarkerTTL.Milliseconds()).Err()
	cancel()
	if err != nil {
		l.failed(ctx, err)
		l.local.charge(key, reqID, tokens)
		return
	}
	l.ok()
}

// WritePrometheus writes cairn_ratelimit_limited_total,
// cairn_ratelimit_redis_errors_total and cairn_ratelimit_degraded in
// Prometheus text format.
func (l *Redis) WritePrometheus(w io.Writer) {
	l.m.writePrometheus(w)
	deg := 0
	if l.degraded.Load() {
		deg = 1
	}
	fmt.Fprintf(w, "# HELP cairn_ratelimit_redis_errors_total Rate-limit calls to Redis that failed or missed their deadline.\n"+
		"# TYPE cairn_ratelimit_redis_errors_total counter\ncairn_ratelimit_redis_errors_total %d\n"+
		"# HELP cairn_ratelimit_degraded 1 while Redis is failing and limits are decided per replica.\n"+
		"# TYPE cairn_ratelimit_degraded gauge\ncairn_ratelimit_degraded %d\n", l.errs.Load(), deg)
}

// Degraded reports whether the last Redis call failed.
func (l *Redis) Degraded() bool { return l.degraded.Load() }

// redisKey returns the key's hash name; the braces are a Redis Cluster
// hash tag keeping the counter and its charge markers in one slot.
func (l *Redis) redisKey(key string) string {
	if v, ok := l.keys.Load(key); ok {
		return v.(string)
	}
	rk := l.prefix + "{" + key + "}"
	l.keys.Store(key, rk)
	return rk
}

// fallback decides locally while Redis fails.
func (l *Redis) fallback(key string, lim Limits) Decision {
	if lim.FailClosed {
		d := Decision{
			Kind: KindRequests, Degraded: true,
			LimitRequests: lim.RPM, LimitTokens: lim.TPM,
			RetryAfter: time.Second, ResetRequests: time.Second,
		}
		if lim.TPM > 0 {
			d.ResetTokens = time.Second
		}
		l.m.countLimited(key, KindRequests)
		return d
	}
	share := Limits{RPM: l.share(lim.RPM), TPM: l.share(lim.TPM)}
	d := l.local.check(key, share)
	d.Degraded = true
	if !d.Allowed {
		l.m.countLimited(key, d.Kind)
	}
	return d
}

func (l *Redis) share(limit int) int {
	if limit <= 0 {
		return 0
	}
	return max(limit/l.replicas, 1)
}

// failed counts a Redis failure and logs at most once per logEvery. A
// failure caused by the caller's own context (shutdown) is not Redis's
// fault and is not counted.
func (l *Redis) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	n := l.errs.Add(1)
	if !l.degraded.Load() {
		l.degraded.Store(true)
	}
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(logEvery) || !l.lastLog.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	l.log.Warn("rate limiter: redis unavailable; each replica admits its share, fail_closed keys are refused",
		"err", err.Error(), "share", fmt.Sprintf("1/%d", l.replicas), "errors_total", n, "suppressed", l.suppressed.Swap(0))
}

// ok clears the degraded state after a successful call.
func (l *Redis) ok() {
	if l.degraded.Load() && l.degraded.CompareAndSwap(true, false) {
		l.log.Info("rate limiter: redis reachable again, shared limits resumed", "errors_total", l.errs.Load())
	}
}
