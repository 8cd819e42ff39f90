package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
)

// ErrNotFound is returned by lookups when no record carries the ID.
var ErrNotFound = errors.New("capture record not found")

// defaultMaxQueueBytes is capture.max_queue_bytes's default: the raw
// bodies between Enqueue and the sinks. A record that would pass it is
// still queued, without its bodies (counted in
// cairn_capture_bodies_dropped_total{reason="queue_bytes"}), so a burst of
// large requests cannot grow memory and still yields one record per
// request.
const defaultMaxQueueBytes = 32 << 20

// maxKeptLineBuf bounds the line buffer a slot keeps between records.
const maxKeptLineBuf = 1 << 20

// redisLookupTimeout bounds the Redis part of Lookup so that a hung Redis
// does not hold up the file search.
const redisLookupTimeout = 500 * time.Millisecond

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Capture holds queue size, sampling, file rotation, retention, the
	// Redis stream cap and the memory ring size. Zero values get the
	// configs defaults.
	Capture configs.Capture
	// DataDir is the data directory; files go to DataDir/capture. Required.
	DataDir string
	// Redis, when not nil, adds the Redis stream sink and Redis lookup.
	// The Writer does not close it.
	Redis redis.UniversalClient
	// Masker masks records. Nil: built-in detectors only.
	Masker *Masker
	// Secrets are the gateway's own secrets, replaced in every record
	// before anything sees it (issue 12.4). Nil: none.
	Secrets *Redactor
	// Metrics receives every record and the capture counters. Nil: a
	// private registry.
	Metrics *Metrics
	// Logger gets rate-limited warnings (drops, sink errors). Nil: discard.
	Logger *slog.Logger
	// Rand returns a float in [0, 1) for body sampling. Nil: math/rand/v2.
	Rand func() float64
	// Now is the clock for file names, rotation and retention. Nil:
	// time.Now.
	Now func() time.Time
}

// Writer takes finished records from the request path and, off it, masks
// them, fills Request and Response from their raw bodies, updates Metrics,
// hands them to observers, keeps the most recent in memory for lookup, and
// appends them to the JSONL files and (when configured) the Redis stream.
//
// Masking and encoding run on up to min(GOMAXPROCS, 8) goroutines in
// parallel; one committer then hands the records, in the order Enqueue
// accepted them, to the observers, the memory ring and each sink, which
// see every accepted record exactly once (pipeline.go).
//
// Enqueue never blocks and memory stays bounded: the queue is bounded in
// records (capture.queue_size: a full queue drops the record and counts it
// in cairn_capture_dropped_total) and in body bytes
// (capture.max_queue_bytes: past it the record is kept without its bodies
// and counted in cairn_capture_bodies_dropped_total). Lookup, Recent and
// Enqueue are safe for concurrent use; Subscribe must be called before
// Start; Close is called once, after the request path has stopped.
type Writer struct {
	opt     WriterOptions
	cap     configs.Capture
	masker  *Masker
	metrics *Metrics
	log     *slog.Logger
	rand    func() float64
	now     func() time.Time

	q         chan *Record
	qBytes    atomic.Int64 // raw body bytes between Enqueue and commit
	maxQBytes int64
	// The pipeline (pipeline.go).
	preparers int
	work      chan *slot // dispatched, to be prepared
	order     chan *slot // dispatched, to be committed in this order
	free      chan *slot
	mu        sync.RWMutex // guards closed against Enqueue's send
	closed    bool
	started   atomic.Bool
	stop      chan struct{}
	abort     chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	observers []func(*Record)
	maskerP   atomic.Pointer[Masker]  // replaced by SetMasker on reload
	sample    atomic.Pointer[float64] // body sample rate; SetSampleRate
	mem       *memory
	files     *fileSink
	redis     *redisSink
	ids       *idHasher // client request ID hashing (lookup.go)
	scores    *scoreStore
	pricing   atomic.Pointer[Pricing] // SetPricing
	// unpriced are the provider/models already warned about (price).
	unpricedMu sync.Mutex
	unpriced   map[string]bool

	lastDropLog atomic.Int64
	lastErrLog  atomic.Int64
}

// NewWriter creates the capture directory and a Writer. Call Subscribe for
// observers, then Start.
func NewWriter(o WriterOptions) (*Writer, error) {
	if o.DataDir == "" {
		return nil, errors.New("new capture writer: data dir required")
	}
	c := o.Capture
	if c.QueueSize <= 0 {
		c.QueueSize = 65536
	}
	if c.MaxFileBytes <= 0 {
		c.MaxFileBytes = 64 << 20
	}
	if c.RetentionDays <= 0 {
		c.RetentionDays = 7
	}
	if c.RedisStreamMaxLen <= 0 {
		c.RedisStreamMaxLen = 100000
	}
	if c.Memory <= 0 {
		c.Memory = 10000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = configs.Duration(100 * time.Millisecond)
	}
	if c.Fsync == "" {
		c.Fsync = configs.FsyncOff
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = defaultMaxQueueBytes
	}
	if c.MemoryBytes <= 0 {
		c.MemoryBytes = defaultMemoryBytes
	}
	if c.MaxTotalBytes == 0 {
		c.MaxTotalBytes = defaultMaxTotalBytes
	}
	w := &Writer{
		opt: o, cap: c, masker: o.Masker, metrics: o.Metrics, log: o.Logger, rand: o.Rand, now: o.Now,
		q:    make(chan *Record, c.QueueSize),
		stop: make(chan struct{}), abort: make(chan struct{}), done: make(chan struct{}),
		mem: newMemory(c.Memory, c.MemoryBytes), maxQBytes: c.MaxQueueBytes,
	}
	w.initPipeline()
	if w.masker == nil {
		w.masker = NewMasker(configs.Masking{})
	}
	w.maskerP.Store(w.masker)
	rate := c.SampleRate()
	w.sample.Store(&rate)
	if w.metrics == nil {
		w.metrics = NewMetrics()
	}
	qb := w.qBytes.Load
	w.metrics.queueBytesFn.Store(&qb)
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.rand == nil {
		w.rand = rand.Float64
	}
	if w.now == nil {
		w.now = time.Now
	}
	var err error
	if w.files, err = newFileSink(o.DataDir, c, w.now, &w.metrics.ledger, w.metrics); err != nil {
		return nil, fmt.Errorf("new capture writer: %w", err)
	}
	if w.ids, err = openIDHasher(o.DataDir, o.Redis, time.Duration(c.RetentionDays)*24*time.Hour); err != nil {
		return nil, fmt.Errorf("new capture writer: %w", err)
	}
	w.metrics.ledger.activate(sinkFile)
	w.scores = newScoreStore(o.DataDir, c.RetentionDays, o.Redis, c.RedisStreamMaxLen, w.now)
	if o.Redis != nil {
		w.redis = newRedisSink(o.Redis, c.RedisStreamMaxLen, c.RetentionDays, c.RedisBacklog, w.metrics, w.log, w.now)
		w.metrics.ledger.activate(sinkRedis)
	}
	return w, nil
}

// SetMasker makes the writer mask every record it takes from now on with
// m (a reload that changed masking). Safe for concurrent use.
func (w *Writer) SetMasker(m *Masker) { w.maskerP.Store(m) }

// SetSampleRate sets the share of successful records that keep their
// bodies (a reload). Safe for concurrent use.
func (w *Writer) SetSampleRate(r float64) { w.sample.Store(&r) }

// Subscribe adds an observer. Observers get every record after masking,
// in order, on the writer goroutine: they must return quickly and must not
// modify the record or call Close. A panicking observer is logged and
// skipped. Call before Start.
func (w *Writer) Subscribe(fn func(*Record)) {
	if w.started.Load() {
		panic("BUG: capture.Writer.Subscribe after Start")
	}
	w.observers = append(w.observers, fn)
}

// Start starts the writer goroutine and, with Redis, the Redis sink's
// goroutine. Close stops them.
func (w *Writer) Start() {
	if !w.started.CompareAndSwap(false, true) {
		return
	}
	if w.redis != nil {
		go w.redis.run()
	}
	go w.run()
}

// Enqueue hands r to the writer without waiting. The writer owns r from
// then on: the caller must not read or modify it again. r.Headers may hold
// any request headers: the writer keeps only an allow-list (user-agent,
// x-client-name, x-request-id, x-client-request-id, content-type, accept,
// openai-beta, traceparent, x-stainless-*, …), never a name containing
// auth, key, token, secret, cookie, password, session, signature or
// credential, and masks the values. When the queue is full, or after
// Close, r is dropped and counted.
func (w *Writer) Enqueue(r *Record) {
	if r == nil {
		return
	}
	size := rawSize(r)
	if size > 0 && !w.reserve(size) {
		r.Raw.release()
		r.Raw, size = nil, 0
		w.metrics.bodiesDropped[BodiesQueueBytes].Add(1)
	}
	reason := LostClosed
	w.mu.RLock()
	if !w.closed {
		// Admitted before the send, so that the writer never takes a
		// record the ledger has not seen.
		w.metrics.ledger.admit()
		select {
		case w.q <- r:
			w.mu.RUnlock()
			return
		default:
		}
		w.metrics.ledger.abandon(1, LostQueueFull)
		reason = -1
	}
	w.mu.RUnlock()
	if reason >= 0 {
		w.metrics.ledger.refuse(1, reason)
	}
	w.qBytes.Add(-size)
	w.dropped(1)
}

// reserve takes n bytes of the queue's body budget, or reports false
// when that would pass capture.max_queue_bytes. The counter never goes
// over the budget, not even for an instant.
func (w *Writer) reserve(n int64) bool {
	for {
		cur := w.qBytes.Load()
		if cur+n > w.maxQBytes {
			return false
		}
		if w.qBytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// rawSize is the size of r's raw bodies. It does not change while r is
// queued (the writer owns r and only it clears Raw).
func rawSize(r *Record) int64 {
	if r.Raw == nil {
		return 0
	}
	return int64(len(r.Raw.RequestBody) + len(r.Raw.ResponseBody) + len(r.Raw.StreamContent) + len(r.Raw.StreamToolCalls))
}

func (w *Writer) dropped(n int) {
	w.metrics.dropped.Add(uint64(n))
	now := time.Now().UnixNano()
	if last := w.lastDropLog.Load(); now-last >= int64(10*time.Second) && w.lastDropLog.CompareAndSwap(last, now) {
		w.log.Warn("capture: records dropped (queue full or closed); see cairn_capture_dropped_total",
			"dropped_total", w.metrics.dropped.Load(), "queue_size", cap(w.q))
	}
}

func (w *Writer) sinkError(sink int, err error) {
	w.metrics.sinkErrors[sink].Add(1)
	now := time.Now().UnixNano()
	if last := w.lastErrLog.Load(); now-last >= int64(10*time.Second) && w.lastErrLog.CompareAndSwap(last, now) {
		w.log.Error("capture: sink error", "sink", sinkNames[sink], "err", err)
	}
}

func (w *Writer) flush() {
	if err := w.files.flush(false); err != nil {
		w.sinkError(sinkFile, err)
	}
}

// lossRecent is how long Health reports a lost record as not OK.
const lossRecent = time.Minute

// Health is the state of the capture sinks, for readiness and operators.
type Health struct {
	// OK is false while a sink is failing or has lost records.
	OK bool `json:"ok"`
	// FileError is the last file write error while the disk refuses
	// writes.
	FileError string `json:"file_error,omitempty"`
	// RedisFailing is true while Redis batches fail.
	RedisFailing bool       `json:"redis_failing,omitempty"`
	Accounting   Accounting `json:"accounting"`
}

// Health returns whether evidence is being kept: a sink failing (records
// held in memory and retried) or a record lost in the last minute (see
// Accounting) make it not OK.
func (w *Writer) Health() Health {
	a := w.metrics.ledger.snapshot()
	h := Health{OK: true, Accounting: a}
	if w.metrics.sinkFailing[sinkFile].Load() {
		h.OK = false
		h.FileError = "the disk refuses capture writes; records are held in memory and retried"
	}
	if w.metrics.sinkFailing[sinkRedis].Load() {
		h.OK, h.RedisFailing = false, true
	}
	if !a.LastLost.IsZero() && time.Since(a.LastLost) < lossRecent {
		h.OK = false
	}
	return h
}

func (w *Writer) observe(fn func(*Record), r *Record) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("capture: observer panicked", "panic", fmt.Sprint(p), "gateway_request_id", r.GatewayRequestID)
		}
	}()
	fn(r)
}

// Close stops accepting records, writes every queued record to the
// observers and sinks, flushes, syncs and closes the capture file, and
// waits for the Redis sink to drain, all within ctx. Records still queued
// when ctx ends are dropped and counted. Close is safe to call more than
// once and without Start.
func (w *Writer) Close(ctx context.Context) error {
	first := false
	w.closeOnce.Do(func() {
		first = true
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		if w.started.CompareAndSwap(false, true) {
			// Never started: run the writer now just to drain.
			if w.redis != nil {
				go w.redis.run()
			}
			go w.run()
		}
		close(w.stop)
	})
	if !first {
		select {
		case <-w.done:
		case <-ctx.Done():
			return fmt.Errorf("close capture writer: %w", ctx.Err())
		}
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		close(w.abort)
		<-w.done
		if w.redis != nil {
			close(w.redis.abort)
			<-w.redis.done
			w.redis.abandon(LostShutdown)
		}
		return fmt.Errorf("close capture writer: %w", ctx.Err())
	}
	if w.redis != nil {
		select {
		case <-w.redis.done:
		case <-ctx.Done():
			close(w.redis.abort)
			<-w.redis.done
			w.redis.abandon(LostShutdown)
			return fmt.Errorf("close capture writer: redis sink: %w", ctx.Err())
		}
	}
	return nil
}

// Lookup returns the record id names, resolved as Find does; for a
// client ID several records carry, the newest. The record is shared: do
// not modify it.
func (w *Writer) Lookup(ctx context.Context, id string) (*Record, error) {
	m, err := w.Find(ctx, id)
	if err != nil {
		return nil, err
	}
	return m.Records[0], nil
}

// Recent returns up to n of the most recent records in memory for which
// keep returns true (nil keeps all), newest first. keep runs under the
// memory lock: it must be fast and must not call the Writer. The records
// are shared: do not modify them.
func (w *Writer) Recent(n int, keep func(*Record) bool) []*Record {
	return w.mem.recent(n, keep)
}
