package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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
	DefaultRedisTimeout = 250 * time.Millisecond
	DefaultPrefix       = "cairn:rl:"
	// MinCallTimeout is the shortest deadline of one Redis call.
	MinCallTimeout = time.Second
	// logEvery bounds the "Redis failing" log lines.
	logEvery = 10 * time.Second
)

// RedisOptions configure a Redis limiter.
type RedisOptions struct {
	// Timeout is the most a request waits for a lease when its replica
	// holds no budget for its key. Default 250ms. Redis calls themselves (leases, returns,
	// heartbeats; all in the background) have a deadline of Timeout or
	// MinCallTimeout, whichever is longer, so a slow but healthy Redis is
	// not taken for a dead one. The client must honour deadlines: see
	// NewRedis.
	Timeout time.Duration
	// Replicas is the number of gateway replicas sharing the budget until
	// the replicas' heartbeats in Redis say how many are live; it sizes
	// the leases and, during an outage, the share of what remains of the
	// window. Default 1.
	Replicas int
	// Logger receives at most one line per ~10s while Redis fails, and one
	// when it recovers. Default: discard.
	Logger *slog.Logger
	// Prefix starts every Redis key. Default "cairn:rl:".
	Prefix string
}

// Redis limits keys with one budget per key and window held in Redis and
// shared by every replica, without a Redis round trip per request: each
// replica leases a slice of the window's budget from Redis in the
// background (one Lua script, atomic, on Redis's clock), spends it
// locally, refills before it runs out and returns what it does not use
// (see lease.go). Redis never leases more than the limit, so while Redis is
// reachable the replicas together admit at most the limit, however slow
// the calls are. When Redis is unreachable (breakerFailures failed calls
// in a row) each replica admits its share of what remained of the window
// when it last saw Redis, or refuses FailClosed keys; a probe closes the
// breaker when Redis answers again.
//
// Redis is safe for concurrent use and lives as long as the gateway; it
// runs one background goroutine plus one per lease call in flight, all
// stopped by Close.
type Redis struct {
	c        redis.UniversalClient
	timeout  time.Duration // a request's wait for a lease
	callTO   time.Duration // one Redis call's deadline
	replicas int
	log      *slog.Logger
	prefix   string
	id       string // this replica in the heartbeat set

	m     metrics
	lm    leaseMetrics
	keys  sync.Map // key name -> *leaseState
	br    breaker
	sil   silence      // since when Redis has answered nothing (see silence)
	conns conns        // whether an answer waits unread (see conns)
	live  atomic.Int32 // replicas with a fresh heartbeat; 0: unknown

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	goMu   sync.RWMutex // guards closed against wg.Add racing Close's Wait
	closed bool
	wg     sync.WaitGroup

	errs       atomic.Uint64
	lastLog    atomic.Int64 // unix ns of the last failure log line
	suppressed atomic.Uint64
}

// NewRedis returns a limiter over c and starts its background loop (stop
// it with Close). Every call has a context.WithTimeout(ctx, Timeout)
// deadline, which go-redis honours only when the client was built with
// ContextTimeoutEnabled: true; build it with MaxRetries: -1 as well, or a
// hung Redis costs retries × timeouts. NewClient returns such a client.
// Hand c over before its first call: NewRedis adds a dial hook that lets
// it tell a hung Redis from a starved gateway (see conns), and a client
// with connections already open is not given one.
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
	var b [8]byte
	_, _ = rand.Read(b[:])
	l := &Redis{
		c: c, timeout: o.Timeout, callTO: max(o.Timeout, MinCallTimeout), replicas: o.Replicas, log: o.Logger, prefix: o.Prefix,
		id: hex.EncodeToString(b[:]),
	}
	if st := c.PoolStats(); st != nil && st.TotalConns == 0 {
		// Every connection from now on is seen: the evidence is whole.
		c.AddHook(dialHook{&l.conns})
		l.conns.hooked.Store(true)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.loop()
	return l
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
