// Package proxy is Cairn's request path: the fasthttp API and admin
// servers, request handling, the upstream clients and the SSE relay. It
// wires routing, schema, capture and incidents together and holds no policy
// of its own.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/incidents"
	"github.com/cairnhq/cairn/routing"
	"github.com/cairnhq/cairn/routing/ratelimit"
	"github.com/cairnhq/cairn/schema"
)

// limiter is what the gateway needs of a rate limiter; ratelimit.Memory and
// ratelimit.Redis both provide it.
type limiter interface {
	Check(ctx context.Context, key string, l ratelimit.Limits, reqID string) ratelimit.Decision
	Charge(ctx context.Context, key string, l ratelimit.Limits, reqID string, tokens int, res ratelimit.Reservation)
	WritePrometheus(w io.Writer)
}

// Options configure a Gateway.
type Options struct {
	// Config is the loaded config; its Path, when set, is re-read on reload.
	Config *configs.Config
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Gateway is one running Cairn instance: its route table, upstream pools,
// limiter, capture writer and incident manager. Create with New, run with
// Serve, stop with Shutdown.
type Gateway struct {
	log      *slog.Logger
	now      func() time.Time
	ids      *idGen
	values   *valueCache // interned request header values for records
	baseCtx  context.Context
	cancel   context.CancelFunc
	cfgPath  string
	breakers *routing.Breakers
	live     *routing.Live

	upstreams  atomic.Pointer[map[string]*upstream]
	refusalT   atomic.Pointer[refusalTable] // the routes' refusal phrases
	contracts  *schema.Contracts
	userHash   *capture.UserHasher // keyed hashes of the requests' user values
	userHashes *userHashCache      // userHash with a cache of recent users
	rdb        *redis.Client
	respState  *respStore // where each response lives (responses_store.go)
	limiter    limiter
	capture    *capture.Writer
	metrics    *capture.Metrics
	tracing    *capture.Tracing
	incidents  *incidents.Manager
	audit      *incidents.Audit
	// secrets are every config's secrets since start (issue 12.4);
	// masker is the capture masker, also used for admin input and spans.
	secrets *capture.Redactor
	masker  *capture.Masker

	// chargeAsync sends token charges through the charge queue. Both
	// limiters settle a charge in memory (the Redis limiter sends debt to
	// Redis in the background), so it is false; the queue stays for a
	// limiter whose Charge does I/O.
	chargeAsync bool
	// chargesPending counts charges queued or being sent to Redis.
	chargesPending atomic.Int64

	reloadMu sync.Mutex

	// overridesCtx ends the override sync (Live.Run) at shutdown.
	overridesCtx  context.Context
	overridesStop context.CancelFunc
	prompts       *routing.Prompts

	sem      chan struct{}
	bodies   *bodyBudget // server.max_inflight_body_bytes
	charges  chan charge
	stopping atomic.Bool
	started  atomic.Bool
	streams  sync.WaitGroup
	workers  sync.WaitGroup

	relaysMu sync.Mutex
	relays   map[*streamRelay]struct{} // streams being relayed
	cutting  bool                      // the drain deadline passed
	// pastDrain is set at the drain deadline: requests still waiting on
	// an upstream are cut there too (shutdown_requests.go).
	pastDrain atomic.Bool

	chargeDropped atomic.Int64
	streamsOpen   atomic.Int64
	reloads       atomic.Int64
	adminAddr     atomic.Pointer[string] // the admin listener's bound address
	apiAddr       atomic.Pointer[string] // the API listener's bound address
	idleClosed    atomic.Int64
	// recordsBegun counts requests that got a gateway ID (each yields one
	// record); recordsOpen those whose record is not yet handed to capture
	// (in flight, streams). begun = open + cairn_capture_admitted_total.
	recordsBegun atomic.Int64
	recordsOpen  atomic.Int64
	reloadErrors atomic.Int64

	api   *fasthttp.Server
	admin *fasthttp.Server

	// noCapture skips handing records to the writer; only the capture
	// on/off benchmark sets it.
	noCapture bool

	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds a gateway from a validated config. It opens the data
// directory, connects to Redis when configured (a Redis that is down at
// start is not fatal: limits degrade and recover by themselves), and loads
// existing incidents.
func New(o Options) (*Gateway, error) {
	cfg := o.Config
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	secrets := &capture.Redactor{}
	secrets.Add(capture.SecretsOf(cfg))
	o.Logger = newRedactingLogger(o.Logger, secrets)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data_dir: %w", err)
	}
	g := &Gateway{
		log:       o.Logger,
		now:       o.Now,
		ids:       newIDGen(o.Now),
		values:    newValueCache(),
		cfgPath:   cfg.Path,
		breakers:  routing.NewBreakers(5, 30*time.Second, o.Now),
		contracts: schema.NewContracts(1024),
		sem:       make(chan struct{}, cfg.Server.MaxConcurrency),
		bodies:    newBodyBudget(cfg.Server.MaxInflightBodyBytes),
		charges:   make(chan charge, 8192),
		secrets:   secrets,
		masker:    capture.NewMasker(cfg.Masking),
	}
	g.baseCtx, g.cancel = context.WithCancel(context.Background())
	ups, err := buildUpstreams(cfg, nil)
	if err != nil {
		return nil, err
	}
	g.upstreams.Store(&ups)
	g.live = routing.NewLive(routing.NewTable(cfg, g.breakers))
	g.refusalT.Store(newRefusalTable(cfg))

	if cfg.RedisURL != "" {
		g.rdb, err = ratelimit.NewClient(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis_url: %w", err)
		}
		g.limiter = ratelimit.NewRedis(g.rdb, ratelimit.RedisOptions{
			Timeout: cfg.RateLimit.RedisTimeout.D(), Replicas: cfg.RateLimit.Replicas, Logger: g.log,
		})
	} else {
		g.limiter = ratelimit.NewMemory(o.Now)
	}
	g.respState = newRespStore(g.rdb, o.Now)
	var rdb redis.UniversalClient
	if g.rdb != nil {
		rdb = g.rdb
	}
	g.userHash, err = capture.OpenUserHasher(cfg.DataDir, rdb, g.log)
	g.userHashes = newUserHashCache(g.userHash)
	if err != nil {
		return nil, err
	}
	g.metrics = capture.NewMetrics()
	g.tracing, err = capture.NewTracing(cfg.Tracing, cfg.Release)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	g.tracing.SetScrub(g.scrubText)
	g.capture, err = capture.NewWriter(capture.WriterOptions{
		Capture: cfg.Capture, DataDir: cfg.DataDir, Redis: rdb,
		Masker: g.masker, Secrets: g.secrets, Metrics: g.metrics, Logger: g.log,
	})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	g.capture.SetPricing(capture.NewPricing(cfg))
	g.audit, err = incidents.OpenAudit(cfg.DataDir, rdb, g.log)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	hostname, _ := os.Hostname()
	g.useOverrides(cfg, rdb, hostname)
	g.incidents, err = incidents.NewManager(incidents.Options{
		Detection: cfg.Detection, DataDir: cfg.DataDir, Redis: rdb,
		State: liveState{g.live}, Rollback: g.live, Audit: g.audit,
		Recent: g.capture.Recent, Webhooks: cfg.Notify.Webhooks, Logger: g.log, Now: o.Now,
		Lookup:  g.lookupRecent,
		Replica: hostname,
	})
	if err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	if !cfg.Detection.Disabled {
		g.capture.Subscribe(g.incidents.Observe)
	}
	g.api = g.newAPIServer(cfg)
	g.admin = g.newAdminServer(cfg)
	return g, nil
}

// liveState adapts routing.Live to incidents.StateSource.
type liveState struct{ l *routing.Live }

func (s liveState) State() configs.State { return s.l.Load().State() }

// Generation lets the incident manager rebuild its view of the live state
// only when a reload or rollback changed it (see routing.Live.Generation).
func (s liveState) Generation() uint64 { return s.l.Generation() }

func buildUpstreams(cfg *configs.Config, old map[string]*upstream) (map[string]*upstream, error) {
	m := make(map[string]*upstream, len(cfg.Providers))
	for _, p := range cfg.Providers {
		if u, ok := old[p.Name]; ok && sameSettings(u.cfg, p) {
			m[p.Name] = u
			continue
		}
		u, err := newUpstream(p)
		if err != nil {
			return nil, err
		}
		m[p.Name] = u
	}
	return m, nil
}

func (g *Gateway) newAPIServer(cfg *configs.Config) *fasthttp.Server {
	maxBody := cfg.Server.MaxBodyBytes
	for _, r := range cfg.Routes {
		maxBody = max(maxBody, r.MaxBodyBytes)
	}
	var streamMax time.Duration
	for _, p := range cfg.Providers {
		streamMax = max(streamMax, p.StreamMaxDuration.D())
	}
	return &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			g.serveAPI(ctx)
			g.scrubResponse(&ctx.Response)
		},
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			g.serveParseError(ctx, err)
			g.scrubResponse(&ctx.Response)
		},
		Name:                         "cairn",
		ReadBufferSize:               cfg.Server.MaxHeaderBytes,
		WriteBufferSize:              serverWriteBufferSize,
		MaxRequestBodySize:           maxBody,
		ReadTimeout:                  cfg.Server.ReadTimeout.D(),
		IdleTimeout:                  cfg.Server.IdleTimeout.D(),
		WriteTimeout:                 max(cfg.Server.WriteTimeout.D(), streamMax+streamWriteMargin),
		Concurrency:                  cfg.Server.MaxConcurrency * 2,
		CloseOnShutdown:              true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                false,
		DisablePreParseMultipartForm: true,
		// The connection's read buffer (max_header_bytes, 32 KiB) goes
		// back to a pool once the request is read, instead of staying
		// with the connection while a stream idles or a keep-alive
		// connection waits (issue 15: ≤ 40 KB per idle stream).
		ReduceMemoryUsage:     true,
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{g.log},
	}
}

func (g *Gateway) newAdminServer(cfg *configs.Config) *fasthttp.Server {
	return &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			g.serveAdmin(ctx)
			g.scrubResponse(&ctx.Response)
		},
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				adminErrorCode(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large for the admin API", "request_too_large")
			} else {
				adminError(ctx, fasthttp.StatusBadRequest, "malformed request")
			}
		},
		Name:                  "cairn-admin",
		ReadBufferSize:        16 << 10,
		MaxRequestBodySize:    maxAdminBodyBytes, // POST /admin/scores: 10,000 scores
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           60 * time.Second,
		NoDefaultServerHeader: true,
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{g.log},
	}
}

// fasthttpLogger routes fasthttp's own messages to slog at debug level:
// they are per-connection noise (client resets) that must not flood logs.
// fasthttp's errors quote the request bytes they choked on (a header
// value, a buffer snippet), which may be a secret or PII, and its other
// arguments are client addresses; so only the format and each error's
// text up to its first quote are logged (issue 9).
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	safe := make([]any, len(args))
	for i, a := range args {
		safe[i] = "-"
		if err, ok := a.(error); ok {
			safe[i] = errorClass(err.Error())
		}
	}
	f.l.Debug("fasthttp", "msg", fmt.Sprintf(format, safe...))
}

// errorClass cuts an error text at the first quoted or dumped value.
func errorClass(s string) string {
	if i := strings.IndexAny(s, "\"'`"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "contents:"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, ": ")
}

// Serve starts the background workers and serves the API and admin
// listeners until Shutdown. It returns the first serve error, or nil after a
// clean shutdown.
func (g *Gateway) Serve(api, admin net.Listener) error {
	g.start()
	errc := make(chan error, 2)
	go func() { errc <- g.api.Serve(byteListener{Listener: newLingerListener(api), idle: &g.idleClosed}) }()
	apiAddr := api.Addr().String()
	g.apiAddr.Store(&apiAddr)
	adminAddr := admin.Addr().String()
	g.adminAddr.Store(&adminAddr)
	go func() { errc <- g.admin.Serve(admin) }()
	cfg := g.live.Load().Config()
	g.log.Info("cairn serving", "listen", api.Addr().String(), "admin", admin.Addr().String(),
		"config_revision", cfg.Revision, "release", cfg.Release, "routes", len(cfg.Routes))
	err := <-errc
	if g.stopping.Load() {
		return nil
	}
	return err
}

func (g *Gateway) start() {
	if !g.started.CompareAndSwap(false, true) {
		return
	}
	g.capture.Start()
	g.incidents.Start()
	g.workers.Add(1)
	go func() { defer g.workers.Done(); g.live.Run(g.overridesCtx) }()
	g.promptsSeen()
	g.workers.Add(1)
	go g.promptsLoop()
	for range chargeWorkers {
		g.workers.Add(1)
		go g.chargeLoop()
	}
	st := g.live.Load().State()
	if _, err := g.audit.Append(incidents.AuditEntry{Source: "startup", Revision: st.Revision,
		Changes: configs.Diff(configs.State{}, st)}); err != nil {
		g.log.Warn("audit append failed", "err", err)
	}
}

// Shutdown stops accepting, lets in-flight requests and streams finish
// within the config's drain time (or ctx), then flushes capture and stops
// the incident manager. Nothing enqueued is lost.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutdownOnce.Do(func() { g.shutdownErr = g.shutdown(ctx) })
	return g.shutdownErr
}

func (g *Gateway) shutdown(ctx context.Context) error {
	g.stopping.Store(true)
	drain := g.live.Load().Config().Server.DrainTimeout.D()
	dctx, cancel := context.WithTimeout(ctx, drain)
	defer cancel()
	g.log.Info("cairn draining", "timeout", drain.String(), "streams_open", g.streamsOpen.Load())
	var errs []error
	// The API server's shutdown returns once every client connection is
	// closed, which is after each response was flushed to its client. A
	// stream's body writer returns before that (fasthttp copies what it
	// wrote through a pipe and then writes the chunked terminator), so the
	// end of the streams alone does not mean their last event reached the
	// client: exiting then could drop a stream's server_shutting_down event.
	// So the API shutdown runs through the drain and the grace after it.
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	apiDone := make(chan error, 1)
	go func() { apiDone <- g.api.ShutdownWithContext(actx) }()
	apiClosed := false
	select {
	case <-apiDone:
		apiClosed = true
	case <-dctx.Done():
	}
	// Streams run in body writers; wait for them to end (bounded).
	done := make(chan struct{})
	go func() { g.streams.Wait(); close(done) }()
	select {
	case <-done:
	case <-dctx.Done():
		// End each remaining stream with a terminal error event and its
		// record before capture closes; their relays return once their
		// upstream read fails.
		n := g.cutStreams()
		g.log.Warn("drain deadline passed; ending open streams with server_shutting_down", "streams", n)
	}
	if !apiClosed || dctx.Err() != nil {
		// Requests still waiting on their upstream are answered 503
		// server_shutting_down with a record (outcome shutdown), never
		// left to vanish with the process.
		if n := g.cutUpstreamCalls(); n > 0 {
			g.log.Warn("drain deadline passed; closed the upstream connections still open", "connections", n)
		}
		// Past the deadline: give the cut streams and requests a short
		// grace to finish their records and to write their last bytes to
		// their clients.
		gctx, gcancel := context.WithTimeout(ctx, shutdownGrace)
		select {
		case <-done:
		case <-gctx.Done():
			errs = append(errs, errors.New("drain: streams still open after they were cut at the drain deadline"))
		}
		for len(g.sem) > 0 && gctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if n := len(g.sem); n > 0 {
			errs = append(errs, fmt.Errorf("drain: %d requests still waiting on their upstream %s after the drain deadline", n, shutdownGrace))
		}
		if !apiClosed {
			select {
			case <-apiDone:
			case <-gctx.Done():
				acancel()
				<-apiDone
				g.log.Warn("client connections still open after the drain grace; closing them with the process", "connections", g.api.GetOpenConnectionsCount())
			}
		}
		gcancel()
	}
	_ = g.admin.ShutdownWithContext(dctx)
	g.overridesStop()
	close(g.charges)
	g.workers.Wait()
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	if err := g.capture.Close(fctx); err != nil {
		errs = append(errs, fmt.Errorf("flush capture: %w", err))
	}
	if err := g.incidents.Close(fctx); err != nil {
		errs = append(errs, fmt.Errorf("close incidents: %w", err))
	}
	if err := g.audit.Close(); err != nil {
		errs = append(errs, err)
	}
	_ = g.tracing.Shutdown(fctx)
	g.cancel()
	if c, ok := g.limiter.(interface{ Close() }); ok {
		c.Close() // returns the unspent leases to Redis
	}
	if g.rdb != nil {
		_ = g.rdb.Close()
	}
	g.log.Info("cairn stopped")
	return errors.Join(errs...)
}

// streamWriteMargin is what the API server's write timeout allows beyond
// the longest stream_max_duration (a stream's last events and terminator).
const streamWriteMargin = 10 * time.Second

// shutdownGrace is how long shutdown waits, after the drain deadline,
// for cut streams and in-flight requests to write their records.
const shutdownGrace = 5 * time.Second

// chargeWorkers is how many charge loops send token charges to Redis
// concurrently: one Redis round trip each, so one loop alone caps the
// charges per second at 1/RTT, below a busy gateway's request rate.
const chargeWorkers = 4

// Reload re-reads the config file, validates it and swaps the route table
// atomically. On any error the running config stays and the errors are
// returned. Rollbacks of cohorts whose targets the new file did not change
// are kept, so a reload never silently re-enables a rolled-back canary.
func (g *Gateway) Reload(source string) (configs.State, []configs.Change, error) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.cfgPath == "" {
		return configs.State{}, nil, errors.New("reload: the config was not loaded from a file")
	}
	cfg, err := configs.LoadFile(g.cfgPath)
	if err != nil {
		g.reloadErrors.Add(1)
		g.log.Warn("config reload refused; running config kept", "source", source, "errors", err.Error())
		return configs.State{}, nil, err
	}
	return g.apply(cfg, source)
}

// Apply swaps in an already validated config (used by Reload and tests).
// A config that changes a field the running gateway cannot apply is
// refused whole, naming the fields (see checkReload).
func (g *Gateway) apply(cfg *configs.Config, source string) (configs.State, []configs.Change, error) {
	old := g.live.Load()
	oldCfg := old.Config()
	if err := g.checkReload(oldCfg, cfg); err != nil {
		g.reloadErrors.Add(1)
		g.log.Warn("config reload refused; running config kept", "source", source, "errors", err.Error())
		return configs.State{}, nil, err
	}
	ups, err := buildUpstreams(cfg, *g.upstreams.Load())
	if err != nil {
		g.reloadErrors.Add(1)
		return configs.State{}, nil, err
	}
	g.secrets.Add(capture.SecretsOf(cfg))
	g.upstreams.Store(&ups)
	if !reflect.DeepEqual(oldCfg.Masking, cfg.Masking) {
		g.capture.SetMasker(capture.NewMasker(cfg.Masking))
	}
	g.capture.SetSampleRate(cfg.Capture.SampleRate())
	// Overrides whose part the new file leaves as it was hold; the others
	// are cleared for the fleet, each with its audit entry (issue 17).
	g.promptsSeen() // the outgoing prompts' last_seen is now
	// The audit entry is stamped with the moment the new table went live:
	// a request admitted right after it must not look older than the
	// change that affected it (an incident's changes, auto_revert_prompt).
	at := g.now()
	oldState, newState, cleared := g.live.Reload(routing.NewTable(cfg, g.breakers))
	g.reloads.Add(1)
	changes := append(configs.Diff(oldState, newState), configs.DiffConfig(oldCfg, cfg)...)
	reason := ""
	if kept := len(newState.Overrides()); kept > 0 {
		reason = fmt.Sprintf("kept %d override(s) whose part the file left unchanged", kept)
	}
	if _, err := g.audit.Append(incidents.AuditEntry{At: at, Source: source, Revision: cfg.Revision, Reason: reason, Changes: changes}); err != nil {
		g.log.Warn("audit append failed", "err", err)
	}
	g.auditCleared(cleared, source, cfg.Revision)
	g.promptsSeen()
	g.log.Info("config reloaded", "source", source, "config_revision", cfg.Revision, "changes", len(changes), "overrides_cleared", len(cleared))
	return newState, changes, nil
}

// Live returns the live route table holder (for tests and the demo).
func (g *Gateway) Live() *routing.Live { return g.live }

// Incidents returns the incident manager.
func (g *Gateway) Incidents() *incidents.Manager { return g.incidents }

// Capture returns the capture writer.
func (g *Gateway) Capture() *capture.Writer { return g.capture }

var _ = maps.Clone[map[string]string]
