package capture

import (
	"bufio"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a record is lost to a sink, the reason label of
// cairn_capture_lost_total.
const (
	// LostQueueFull: the writer's queue was full when the request ended.
	LostQueueFull = iota
	// LostClosed: the request ended after the writer was closed.
	LostClosed
	// LostShutdown: the record was still queued, spilled or in the Redis
	// backlog when Close's deadline passed.
	LostShutdown
	// LostSpillFull: the disk refused writes and the records held in
	// memory for it had reached capture.spill_bytes.
	LostSpillFull
	// LostBacklogFull: Redis was unreachable and its backlog had reached
	// capture.redis_backlog (the record is still in the files).
	LostBacklogFull
	// LostInternal: processing the record failed (a bug, logged); the
	// writer goes on with the next record.
	LostInternal
	numReasons
)

var reasonNames = [numReasons]string{"queue_full", "closed", "shutdown", "spill_full", "backlog_full", "internal_error"}

// ledger is the capture pipeline's accounting. Every record handed to
// Enqueue is admitted once and, for each active sink, is at any moment in
// exactly one of: queued (not yet taken by the writer goroutine), pending
// (taken, held in memory for that sink: the file buffer or spill, the
// Redis backlog), written, or lost with a reason. So, per sink:
//
//	admitted = queued + pending + written + lost
//
// Everything but admitted changes under one mutex, taken by the writer a
// few times per record (tens of ns); admitted only grows, before the
// record can be taken, so queued = admitted - taken is never negative and
// every snapshot satisfies the identity (taken = pending + written + lost
// under the mutex). Enqueue, on the request path, takes no lock.
type ledger struct {
	admitted atomic.Uint64
	mu       sync.Mutex
	active   [numSinks]bool
	taken    uint64 // left the queue: processed or lost at Enqueue/Close
	written  [numSinks]uint64
	pending  [numSinks]int64
	lost     [numSinks][numReasons]uint64
	lastLost time.Time // when a record was last lost to any sink
}

// Accounting is a snapshot of the ledger, consistent across its fields.
type Accounting struct {
	Admitted uint64                    `json:"admitted"`
	Queued   uint64                    `json:"queued"`
	Sinks    map[string]SinkAccounting `json:"sinks"`
	// LastLost is when a record was last lost to any sink (zero: never).
	LastLost time.Time `json:"last_lost,omitzero"`
}

// SinkAccounting is one sink's share of an Accounting.
type SinkAccounting struct {
	Written uint64            `json:"written"`
	Pending int64             `json:"pending"`
	Lost    map[string]uint64 `json:"lost"`
}

// LostTotal sums s.Lost.
func (s SinkAccounting) LostTotal() uint64 {
	var n uint64
	for _, v := range s.Lost {
		n += v
	}
	return n
}

// Balanced reports whether admitted = queued + pending + written + lost
// holds for every sink.
func (a Accounting) Balanced() bool {
	for _, s := range a.Sinks {
		if a.Admitted != a.Queued+uint64(s.Pending)+s.Written+s.LostTotal() {
			return false
		}
	}
	return true
}

func (l *ledger) activate(sink int) {
	l.mu.Lock()
	l.active[sink] = true
	l.mu.Unlock()
}

// admit counts a record accepted into the queue.
func (l *ledger) admit() { l.admitted.Add(1) }

// refuse counts a record admitted and lost at once for every sink.
func (l *ledger) refuse(n int, reason int) {
	l.admitted.Add(uint64(n))
	l.mu.Lock()
	l.taken += uint64(n)
	l.loseAllLocked(n, reason)
	l.mu.Unlock()
}

// abandon counts n queued records lost for every sink.
func (l *ledger) abandon(n int, reason int) {
	l.mu.Lock()
	l.taken += uint64(n)
	l.loseAllLocked(n, reason)
	l.mu.Unlock()
}

func (l *ledger) loseAllLocked(n int, reason int) {
	if n > 0 {
		l.lastLost = time.Now()
	}
	for s := range numSinks {
		if l.active[s] {
			l.lost[s][reason] += uint64(n)
		}
	}
}

// take counts one record taken from the queue and handed to the sinks:
// lost[s] is the reason it is lost to sink s, or -1 when the sink holds it
// (pending).
func (l *ledger) take(lost [numSinks]int) {
	l.mu.Lock()
	l.taken++
	for s := range numSinks {
		if !l.active[s] {
			continue
		}
		if lost[s] < 0 {
			l.pending[s]++
		} else {
			l.lost[s][lost[s]]++
			l.lastLost = time.Now()
		}
	}
	l.mu.Unlock()
}

// settle moves n records of sink from pending to written.
func (l *ledger) settle(sink, n int) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	l.pending[sink] -= int64(n)
	l.written[sink] += uint64(n)
	l.mu.Unlock()
}

// drop moves n records of sink from pending to lost.
func (l *ledger) drop(sink, n, reason int) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	l.pending[sink] -= int64(n)
	l.lost[sink][reason] += uint64(n)
	l.lastLost = time.Now()
	l.mu.Unlock()
}

func (l *ledger) snapshot() Accounting {
	l.mu.Lock()
	defer l.mu.Unlock()
	admitted := l.admitted.Load()
	a := Accounting{Admitted: admitted, Queued: admitted - l.taken, Sinks: map[string]SinkAccounting{}, LastLost: l.lastLost}
	for s := range numSinks {
		if !l.active[s] {
			continue
		}
		sa := SinkAccounting{Written: l.written[s], Pending: l.pending[s], Lost: map[string]uint64{}}
		for r := range numReasons {
			sa.Lost[reasonNames[r]] = l.lost[s][r]
		}
		a.Sinks[sinkNames[s]] = sa
	}
	return a
}

// write writes the ledger's families of snapshot a in the Prometheus
// text format. The caller writes cairn_capture_queue_depth from the same
// a, so that every scrape balances.
func (l *ledger) write(bw *bufio.Writer, a Accounting) {
	writeScalar(bw, "cairn_capture_admitted_total", "Records handed to the capture writer (one per request that reached admission).", "counter", a.Admitted)
	bw.WriteString("# HELP cairn_capture_sink_written_total Records a sink stored (file: written to the capture file; redis: added to the stream).\n# TYPE cairn_capture_sink_written_total counter\n")
	for _, s := range sinkNames {
		if sa, ok := a.Sinks[s]; ok {
			bw.WriteString(`cairn_capture_sink_written_total{sink="` + s + `"} ` + strconv.FormatUint(sa.Written, 10) + "\n")
		}
	}
	bw.WriteString("# HELP cairn_capture_sink_pending Records held in memory for a sink: the file buffer and the spill while the disk refuses writes, the Redis backlog while Redis is down.\n# TYPE cairn_capture_sink_pending gauge\n")
	for _, s := range sinkNames {
		if sa, ok := a.Sinks[s]; ok {
			bw.WriteString(`cairn_capture_sink_pending{sink="` + s + `"} ` + strconv.FormatInt(sa.Pending, 10) + "\n")
		}
	}
	bw.WriteString("# HELP cairn_capture_lost_total Records a sink will never store, by reason. admitted = queue_depth + pending + written + lost, per sink.\n# TYPE cairn_capture_lost_total counter\n")
	for _, s := range sinkNames {
		sa, ok := a.Sinks[s]
		if !ok {
			continue
		}
		for _, r := range reasonNames {
			bw.WriteString(`cairn_capture_lost_total{sink="` + s + `",reason="` + r + `"} ` + strconv.FormatUint(sa.Lost[r], 10) + "\n")
		}
	}
}
