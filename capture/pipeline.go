package capture

import (
	"bytes"
	"fmt"
	"runtime"
	"time"
)

// The writer's pipeline (issue 15). One goroutine could not keep up with
// large bodies: masking and encoding cost ~20 µs per small record and
// grow with the body, so at 64 KB bodies the queue filled and records lost
// their bodies. The work is now split in three stages:
//
//	Enqueue ─► q ─► dispatcher ─► work ─► N preparers (mask, encode)
//	                    └───────► order ─► committer (metrics, observers,
//	                                       memory ring, sinks, ledger)
//
// The dispatcher takes records from q in Enqueue order, decides body
// sampling, and hands each to a free slot; the preparers mask and encode
// slots in parallel; the committer takes the slots in dispatch order,
// waiting for each to be ready, so observers, the memory ring and the sinks
// still see every record once, in Enqueue order. The number of slots
// bounds the records being prepared. Only the committer touches the file
// sink, the memory ring's writes and the ledger's take, as the single
// writer goroutine did.

// maxPreparers bounds the preparer goroutines; more cores than this are
// left to the request path.
const maxPreparers = 8

// slotsPerPreparer is how many records each preparer may have in flight
// (being prepared or waiting for the committer), so that a slow record
// does not stall the others.
const slotsPerPreparer = 4

// slot carries one record from the dispatcher through a preparer to the
// committer. Its line buffer is reused from record to record.
type slot struct {
	r        *Record
	keep     bool  // keep the bodies (sampling, decided by the dispatcher)
	reserved int64 // bytes of w.qBytes this record holds until committed
	line     []byte
	item     redisItem
	failed   bool // preparing panicked (a bug, logged): the record is lost
	ready    chan struct{}
}

func preparers() int {
	return min(max(runtime.GOMAXPROCS(0), 1), maxPreparers)
}

func (w *Writer) initPipeline() {
	n := preparers()
	w.preparers = n
	slots := n * slotsPerPreparer
	w.work = make(chan *slot, slots)
	w.order = make(chan *slot, slots)
	w.free = make(chan *slot, slots)
	for range slots {
		w.free <- &slot{ready: make(chan struct{}, 1)}
	}
}

// run is the dispatcher goroutine; it starts the preparers and the
// committer, which closes w.done when everything is written.
func (w *Writer) run() {
	for range w.preparers {
		go w.prepareLoop()
	}
	go w.commitLoop()
	for {
		// Once Close began, the queue is drained by drainQueue, which
		// watches Close's deadline; select alone would pick at random.
		select {
		case <-w.stop:
			w.drainQueue()
			close(w.work)
			close(w.order)
			return
		default:
		}
		select {
		case r := <-w.q:
			w.dispatch(r)
		case <-w.stop:
		}
	}
}

// dispatch hands r to a free slot, waiting for one while all are in
// flight (the queue absorbs the wait). When Close's deadline passes
// meanwhile, r is counted lost with the rest of the queue.
func (w *Writer) dispatch(r *Record) {
	var s *slot
	select {
	case s = <-w.free:
	case <-w.abort:
		w.qBytes.Add(-rawSize(r))
		w.metrics.ledger.abandon(1, LostShutdown)
		w.dropped(1)
		return
	}
	s.r, s.reserved, s.failed = r, rawSize(r), false
	rate := *w.sample.Load()
	s.keep = r.Outcome != OutcomeOK || rate >= 1 || w.rand() < rate
	w.work <- s
	w.order <- s
}

// drainQueue dispatches what is left in the queue (no Enqueue can add
// more) until Close's deadline passes; then it counts the rest lost.
func (w *Writer) drainQueue() {
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
			w.dispatch(r)
		default:
			return
		}
	}
}

func (w *Writer) prepareLoop() {
	for s := range w.work {
		w.prepare(s)
		s.ready <- struct{}{}
	}
}

// prepare masks s.r and encodes its line (and its Redis item). It runs on
// any preparer; it touches nothing but the record and the slot.
func (w *Writer) prepare(s *slot) {
	r := s.r
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("capture: processing a record panicked; record lost", "panic", fmt.Sprint(p), "gateway_request_id", r.GatewayRequestID)
			s.failed = true
		}
	}()
	// Lookup by client ID goes through a keyed hash of the raw ID; the
	// record keeps only the masked form (issue 12.14).
	r.ClientRequestIDHash = w.ids.hash(r.ClientRequestID)
	secrets := w.opt.Secrets.Secrets()
	redactRecord(secrets, r)
	mk := w.maskerP.Load()
	// Every response is checked for leaks, sampled or not (issue 16); a
	// sampled one through its masked form (LeaksMasked).
	raw := r.Raw
	// Learnt before masking consumes the raw body (see redactMasked).
	plainReq := s.keep && secrets.Len() > 0 && plainRequest(raw)
	mk.maskRecord(r, s.keep)
	if s.keep {
		r.PIILeak = mk.LeaksMasked(r.Endpoint, r.Status, raw, r.Response)
	} else {
		r.PIILeak = mk.Leaks(r.Endpoint, r.Status, raw)
	}
	// The proxy boxes the record and its bodies in one allocation: the
	// bodies are let go here, or the queue and the memory ring would keep
	// every one of them alive for as long as the record.
	raw.release()
	redactMasked(secrets, mk, r, plainReq)
	if !oneLine(r.Request) || !oneLine(r.Response) {
		// Masking always yields compact JSON, so this is a bug; the
		// record is still kept, without the bodies.
		w.log.Error("capture: masked body is not one line of JSON", "gateway_request_id", r.GatewayRequestID)
		r.Request, r.Response = nil, nil
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = w.now()
	}
	r.ReceivedAt = r.ReceivedAt.UTC()
	w.price(r)
	if cap(s.line) > maxKeptLineBuf {
		s.line = nil // do not hold on to one huge record's buffer
	}
	s.line = appendRecord(s.line[:0], r)
	if w.redis != nil {
		s.item = redisItem{line: bytes.Clone(s.line[:len(s.line)-1]), ids: redisIDs(r)}
	}
}

// oneLine reports whether a masked body has no line break, as a body
// inside a JSONL record must. The masker emits compact JSON, validated as
// it was produced, so it is not parsed again here (issue 15).
func oneLine(b []byte) bool {
	return bytes.IndexByte(b, '\n') < 0 && bytes.IndexByte(b, '\r') < 0
}

// commitLoop is the committer goroutine: it commits the slots in dispatch
// order and runs the file sink's flush ticks.
func (w *Writer) commitLoop() {
	defer close(w.done)
	tick := time.NewTicker(w.cap.FlushInterval.D())
	defer tick.Stop()
	for {
		select {
		case s, ok := <-w.order:
			if !ok {
				w.finalFlush()
				return
			}
			<-s.ready
			w.commit(s)
			s.r, s.item = nil, redisItem{}
			w.free <- s
		case <-tick.C:
			w.flush()
			w.files.maybePrune()
		}
	}
}

// process prepares and commits r on the calling goroutine (benchmarks and
// tests of one record's cost).
func (w *Writer) process(r *Record) {
	s := &slot{r: r, ready: make(chan struct{}, 1)}
	rate := *w.sample.Load()
	s.keep = r.Outcome != OutcomeOK || rate >= 1 || w.rand() < rate
	w.prepare(s)
	w.commit(s)
}

// commit hands a prepared record to metrics, observers, memory and sinks.
// A panic while doing so (a bug) is logged and the record counted lost,
// so one bad record cannot stop the writer or vanish uncounted.
func (w *Writer) commit(s *slot) {
	r := s.r
	taken := false
	defer func() {
		w.qBytes.Add(-s.reserved)
		if p := recover(); p != nil {
			w.log.Error("capture: processing a record panicked; record lost", "panic", fmt.Sprint(p), "gateway_request_id", r.GatewayRequestID)
		}
		if !taken {
			w.metrics.ledger.take([numSinks]int{LostInternal, LostInternal})
		}
	}()
	if s.failed {
		return
	}
	w.metrics.ObserveRecord(r)
	for _, fn := range w.observers {
		w.observe(fn, r)
	}
	w.mem.add(r)
	if w.files.dayTurned() {
		w.flush()
	}
	// From here to take nothing can fail: the ledger sees what the sinks hold.
	lost := [numSinks]int{-1, -1}
	if !w.files.add(s.line) {
		lost[sinkFile] = LostSpillFull
	}
	if w.redis != nil && !w.redis.enqueue(s.item) {
		lost[sinkRedis] = LostBacklogFull
	}
	w.metrics.ledger.take(lost)
	taken = true
	if w.files.full() {
		w.flush()
	}
}

// finalFlush writes the buffered lines, retrying a failing disk, until
// Close's deadline passes; then it counts what is left as lost and closes
// the file and the Redis sink.
func (w *Writer) finalFlush() {
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
		err := w.files.flush(true)
		if err == nil {
			return
		}
		w.sinkError(sinkFile, err)
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-w.abort:
			t.Stop()
			return
		}
	}
}
