package capture

import (
	"bytes"
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

// maxQueuedBodyBytes bounds the raw bodies waiting in the queue. A record
// that would pass it is still queued, without its bodies (counted in
// cairn_capture_bodies_dropped_total), so a burst of large requests cannot
// exhaust memory and still yields one record per request.
const maxQueuedBodyBytes = 512 << 20

// maxKeptLineBuf bounds the line buffer the writer keeps between records.
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

// Writer takes finished records from the request path and, on its own
// goroutine, masks them, fills Request and Response from their raw bodies,
// updates Metrics, hands them to observers, keeps the most recent in
// memory for lookup, and appends them to the JSONL files and (when
// configured) the Redis stream.
//
// One goroutine processes the records one at a time, in the order Enqueue
// accepted them: observers, the memory ring and each sink see every
// accepted record exactly once, in that order. Per record it costs about
// 10–30 µs of CPU for a 0.5–2 KB request and its response (see
// BenchmarkWriterProcessTypical), so one goroutine absorbs several tens of
// thousands of records per second.
//
// Enqueue never blocks: the queue is bounded and a full queue drops the
// record and counts it in cairn_capture_dropped_total. Lookup, Recent and
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
	qBytes    atomic.Int64 // raw body bytes in q
	maxQBytes int64
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
	unpriced  map[string]bool         // provider/model already warned about; writer goroutine only
	line      []byte                  // the JSON line being written, reused

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
	w := &Writer{
		opt: o, cap: c, masker: o.Masker, metrics: o.Metrics, log: o.Logger, rand: o.Rand, now: o.Now,
		q:    make(chan *Record, c.QueueSize),
		stop: make(chan struct{}), abort: make(chan struct{}), done: make(chan struct{}),
		mem: newMemory(c.Memory), maxQBytes: maxQueuedBodyBytes,
	}
	if w.masker == nil {
		w.masker = NewMasker(configs.Masking{})
	}
	w.maskerP.Store(w.masker)
	rate := c.SampleRate()
	w.sample.Store(&rate)
	if w.metrics == nil {
		w.metrics = NewMetrics()
	}
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
	if size > 0 && w.qBytes.Add(size) > w.maxQBytes {
		w.qBytes.Add(-size)
		r.Raw, size = nil, 0
		w.metrics.bodiesDropped.Add(1)
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

// run is the writer goroutine.
func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.cap.FlushInterval.D())
	defer tick.Stop()
	for {
		select {
		case r := <-w.q:
			w.process(r)
		case <-tick.C:
			w.flush()
			w.files.maybePrune()
		case <-w.stop:
			w.drain()
			return
		}
	}
}

// drain processes what is left in the queue (no Enqueue can add more)
// and writes the buffered lines, retrying a failing disk, until Close's
// deadline passes; then it counts what is left as lost and closes the
// file and the Redis sink.
func (w *Writer) drain() {
	defer func() {
		if n := w.files.bufRecs; n > 0 {
			w.files.buf, w.files.bufRecs = nil, 0
			w.metrics.ledger.drop(sinkFile, n, LostShutdown)
			w.log.Error("capture: records not written at shutdown; the disk refused them until the deadline", "records", n, "err", w.files.lastErr)
		}
		if err := w.files.closeFile(); err != nil {
			w.sinkError(sinkFile, err)
		}
		w.scores.close()
		if w.redis != nil {
			w.redis.close()
		}
	}()
	for {
		select {
		case <-w.abort:
			n := len(w.q)
			for range n {
				r := <-w.q
				w.qBytes.Add(-rawSize(r))
			}
			w.metrics.ledger.abandon(n, LostShutdown)
			w.dropped(n)
			return
		default:
		}
		select {
		case r := <-w.q:
			w.process(r)
			continue
		default:
		}
		if err := w.files.flush(true); err == nil {
			return
		} else {
			w.sinkError(sinkFile, err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-w.abort:
			t.Stop()
		}
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

// process masks r and hands it to metrics, observers, memory and sinks.
// A panic while doing so (a bug) is logged and the record counted lost,
// so one bad record cannot stop the writer or vanish uncounted.
func (w *Writer) process(r *Record) {
	taken := false
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("capture: processing a record panicked; record lost", "panic", fmt.Sprint(p), "gateway_request_id", r.GatewayRequestID)
			if !taken {
				w.metrics.ledger.take([numSinks]int{LostInternal, LostInternal})
			}
		}
	}()
	w.qBytes.Add(-rawSize(r))
	rate := *w.sample.Load()
	keep := r.Outcome != OutcomeOK || rate >= 1 || w.rand() < rate
	// Lookup by client ID goes through a keyed hash of the raw ID; the
	// record keeps only the masked form (issue 12.14).
	r.ClientRequestIDHash = w.ids.hash(r.ClientRequestID)
	secrets := w.opt.Secrets.Secrets()
	redactRecord(secrets, r)
	mk := w.maskerP.Load()
	// Every response is checked for leaks, sampled or not (issue 16); a
	// sampled one through its masked form (LeaksMasked).
	raw := r.Raw
	mk.maskRecord(r, keep)
	if keep {
		r.PIILeak = mk.LeaksMasked(r.Endpoint, r.Status, raw, r.Response)
	} else {
		r.PIILeak = mk.Leaks(r.Endpoint, r.Status, raw)
	}
	redactRecord(secrets, r)
	if !oneLineJSON(r.Request) || !oneLineJSON(r.Response) {
		// Masking always yields compact valid JSON, so this is a bug;
		// the record is still kept, without the bodies.
		w.log.Error("capture: masked body is not one line of JSON", "gateway_request_id", r.GatewayRequestID)
		r.Request, r.Response = nil, nil
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = w.now()
	}
	r.ReceivedAt = r.ReceivedAt.UTC()
	w.price(r)
	w.metrics.ObserveRecord(r)
	for _, fn := range w.observers {
		w.observe(fn, r)
	}
	w.mem.add(r)

	// The line buffer is reused for every record: the file sink copies
	// the line into its own buffer and Redis gets a clone.
	w.line = appendRecord(w.line[:0], r)
	line := w.line
	var item redisItem
	if w.redis != nil {
		item = redisItem{line: bytes.Clone(line[:len(line)-1]), ids: redisIDs(r)}
	}
	if w.files.dayTurned() {
		w.flush()
	}
	// From here to take nothing can fail: the ledger sees what the sinks hold.
	lost := [numSinks]int{-1, -1}
	if !w.files.add(line) {
		lost[sinkFile] = LostSpillFull
	}
	if w.redis != nil && !w.redis.enqueue(item) {
		lost[sinkRedis] = LostBacklogFull
	}
	w.metrics.ledger.take(lost)
	taken = true
	if w.files.full() {
		w.flush()
	}
	if cap(w.line) > maxKeptLineBuf {
		w.line = nil // do not hold on to one huge record's buffer
	}
}

// oneLineJSON reports whether b is empty or valid JSON without a line
// break, as a body inside a JSONL record must be.
func oneLineJSON(b []byte) bool {
	return len(b) == 0 || validJSON(b) && bytes.IndexByte(b, '\n') < 0 && bytes.IndexByte(b, '\r') < 0
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
