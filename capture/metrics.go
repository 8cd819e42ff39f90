package capture

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// maxSeries bounds the label sets of one metric family. Past it, new label
// sets are counted under every label set to "other".
const maxSeries = 10000

// Sink names for cairn_capture_sink_errors_total.
const (
	sinkFile = iota
	sinkRedis
	numSinks
)

var sinkNames = [numSinks]string{"file", "redis"}

// Buckets of the latency and time-to-first-token histograms, in seconds:
// from a cached answer to a long reasoning stream.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Metrics is the gateway's Prometheus registry: request, latency, token,
// contract and upstream error metrics fed by ObserveRecord, and the capture
// pipeline's own counters. It writes the Prometheus text format itself.
// All methods are safe for concurrent use; observing a known label set
// takes no lock.
//
// Families (all prefixed cairn_):
//
//	requests_total{route,cohort,target,status,outcome}  counter
//	request_duration_seconds{route}                     histogram
//	time_to_first_token_seconds{route}                  histogram (streams)
//	tokens_total{route,kind}                            counter, kind=prompt|completion
//	contract_total{route,cohort,target,verdict}         counter, verdict=pass|fail
//	upstream_errors_total{provider,status}              counter, status 0 = no response
//	refusals_total{route,cohort,target}                 counter (metrics_guardrails.go)
//	pii_leaks_total{route,cohort,target}                counter (metrics_guardrails.go)
//	capture_queue_depth                                 gauge
//	capture_dropped_total                               counter
//	capture_bodies_dropped_total{reason}                counter, reason=queue_bytes
//	capture_queue_bytes                                 gauge
//	capture_files_pruned_total{reason}                  counter, reason=retention|max_total_bytes
//	capture_pruned_bytes_total{reason}                  counter
//	capture_written_total                               counter (file sink)
//	capture_redis_written_total                         counter
//	capture_sink_errors_total{sink}                     counter, sink=file|redis
//	capture_sink_failing{sink}                          gauge
//	capture_admitted_total                              counter
//	capture_sink_written_total{sink}                    counter
//	capture_sink_pending{sink}                          gauge
//	capture_lost_total{sink,reason}                     counter
//	capture_redis_backfilled_total                      counter
//	capture_redis_duplicates_removed_total              counter
//	capture_redis_unverified_total                      counter
//	capture_torn_lines_total                            counter
//
// Per sink, admitted = queue_depth + pending + written + lost at every
// scrape (see ledger).
//
// Requests refused by a key's own budget carry outcome="rate_limited".
type Metrics struct {
	requests    *family
	latency     *family
	ttft        *family
	tokens      *family
	contract    *family
	upstreamErr *family
	guard       guardMetrics

	dropped       atomic.Uint64
	bodiesDropped [numBodyReasons]atomic.Uint64
	sinkErrors    [numSinks]atomic.Uint64
	sinkFailing   [numSinks]atomic.Bool
	tornLines     atomic.Uint64
	backfilled    atomic.Uint64
	ledger        ledger
	scores        *scoreMetrics // eval scores and money (metrics_score.go)
	filesPruned   [numPruneReasons]atomic.Uint64
	bytesPruned   [numPruneReasons]atomic.Uint64
	// queueBytesFn reads the writer's queued body bytes (set by NewWriter).
	queueBytesFn atomic.Pointer[func() int64]

	// Interrupted Redis writes (sink_redis_dedupe.go): extra stream
	// copies found and deleted, and records added again without knowing
	// whether the interrupted write had added them.
	redisDupRemoved atomic.Uint64
	redisUnverified atomic.Uint64
}

// Reasons a record's bodies are dropped, the reason label of
// cairn_capture_bodies_dropped_total.
const (
	// BodiesQueueBytes: the bodies would have passed
	// capture.max_queue_bytes; the record is kept without them.
	BodiesQueueBytes = iota
	numBodyReasons
)

var bodyReasonNames = [numBodyReasons]string{"queue_bytes"}

// BodiesDropped is how many records were kept without their bodies for
// reason (BodiesQueueBytes).
func (m *Metrics) BodiesDropped(reason int) uint64 { return m.bodiesDropped[reason].Load() }

func (m *Metrics) queueBytes() int64 {
	if f := m.queueBytesFn.Load(); f != nil {
		return (*f)()
	}
	return 0
}

// Accounting returns a consistent snapshot of the capture accounting.
func (m *Metrics) Accounting() Accounting { return m.ledger.snapshot() }

// TornLines is how many torn lines (a crash mid-write) readers and
// reopened files skipped or sealed.
func (m *Metrics) TornLines() uint64 { return m.tornLines.Load() }

// NewMetrics returns an empty registry.
func NewMetrics() *Metrics {
	return &Metrics{
		requests: newFamily("cairn_requests_total", "Requests by route, cohort, target, status and outcome.", "counter",
			[]string{"route", "cohort", "target", "status", "outcome"}, nil),
		latency: newFamily("cairn_request_duration_seconds", "Request latency as the client saw it, by route.", "histogram",
			[]string{"route"}, latencyBuckets),
		ttft: newFamily("cairn_time_to_first_token_seconds", "Time to the first streamed token, by route.", "histogram",
			[]string{"route"}, latencyBuckets),
		tokens: newFamily("cairn_tokens_total", "Tokens reported by providers, by route and kind.", "counter",
			[]string{"route", "kind"}, nil),
		contract: newFamily("cairn_contract_total", "Contract verdicts by route, cohort, target and verdict.", "counter",
			[]string{"route", "cohort", "target", "verdict"}, nil),
		upstreamErr: newFamily("cairn_upstream_errors_total", "Failed upstream attempts by provider and status (0: no response).", "counter",
			[]string{"provider", "status"}, nil),
		scores: newScoreMetrics(),
		guard:  newGuardMetrics(),
	}
}

// ObserveRecord counts one finished request. The capture writer calls it
// for every record it takes; callers that use a Writer must not call it
// again for the same record.
func (m *Metrics) ObserveRecord(r *Record) {
	target := r.Target // bounded by the config (issue 12.7)
	if target == "" && (r.Provider != "" || r.Model != "") {
		target = r.Provider + "/" + r.Model // a record made without a target
	}
	status := strconv.Itoa(r.Status)
	m.requests.get(r.Route, r.Cohort, target, status, r.Outcome).add(1)
	if r.LatencyMS > 0 {
		m.latency.get(r.Route).observe(r.LatencyMS / 1000)
	}
	if r.TTFTMS > 0 {
		m.ttft.get(r.Route).observe(r.TTFTMS / 1000)
	}
	if r.Usage.PromptTokens > 0 {
		m.tokens.get(r.Route, "prompt").add(uint64(r.Usage.PromptTokens))
	}
	if r.Usage.CompletionTokens > 0 {
		m.tokens.get(r.Route, "completion").add(uint64(r.Usage.CompletionTokens))
	}
	m.observeCost(r, target)
	if v := r.Contract.Verdict; v == VerdictPass || v == VerdictFail {
		m.contract.get(r.Route, r.Cohort, target, v).add(1)
	}
	m.guard.observe(r, target)
	for i := range r.Attempts {
		a := &r.Attempts[i]
		if a.Status >= 500 || a.Status == 429 || (a.Status == 0 && a.Error != "") {
			m.upstreamErr.get(a.Provider, strconv.Itoa(a.Status)).add(1)
		}
	}
}

// WritePrometheus writes every metric in the Prometheus text exposition
// format (version 0.0.4), series sorted by labels.
func (m *Metrics) WritePrometheus(w io.Writer) {
	bw := bufio.NewWriter(w)
	for _, f := range append([]*family{m.requests, m.latency, m.ttft, m.tokens, m.contract, m.upstreamErr}, m.guard.families()...) {
		f.write(bw)
	}
	a := m.ledger.snapshot()
	writeScalar(bw, "cairn_capture_queue_depth", "Records waiting in the capture queue.", "gauge", a.Queued)
	writeScalar(bw, "cairn_capture_dropped_total", "Records dropped because the capture queue was full or closed (also in cairn_capture_lost_total).", "counter", m.dropped.Load())
	bw.WriteString("# HELP cairn_capture_bodies_dropped_total Records kept without their bodies, by reason (queue_bytes: the bodies would have passed capture.max_queue_bytes).\n# TYPE cairn_capture_bodies_dropped_total counter\n")
	for i, n := range bodyReasonNames {
		bw.WriteString(`cairn_capture_bodies_dropped_total{reason="` + n + `"} ` + strconv.FormatUint(m.bodiesDropped[i].Load(), 10) + "\n")
	}
	writeScalar(bw, "cairn_capture_queue_bytes", "Raw body bytes between the request path and the capture sinks (queued, being masked, waiting to be written); at most capture.max_queue_bytes.", "gauge", uint64(max(m.queueBytes(), 0)))
	writeScalar(bw, "cairn_capture_written_total", "Records written to the capture files.", "counter", a.Sinks["file"].Written)
	writeScalar(bw, "cairn_capture_redis_written_total", "Records appended to the Redis capture stream.", "counter", a.Sinks["redis"].Written)
	writeScalar(bw, "cairn_capture_redis_backfilled_total", "Records added to the Redis stream after a failed attempt (backfilled from the backlog).", "counter", m.backfilled.Load())
	writeScalar(bw, "cairn_capture_redis_duplicates_removed_total", "Extra copies of a record found in the Redis stream after interrupted writes (a hung Redis ran them on resuming) and deleted.", "counter", m.redisDupRemoved.Load())
	writeScalar(bw, "cairn_capture_redis_unverified_total", "Records added to the Redis stream again after an interrupted write without finding whether it had added them (not found within the look-up bound): each may be in the stream twice.", "counter", m.redisUnverified.Load())
	writeScalar(bw, "cairn_capture_torn_lines_total", "Torn capture lines (a crash mid-write) skipped by readers or sealed on reopen.", "counter", m.tornLines.Load())
	m.ledger.write(bw, a) // the snapshot queue_depth came from: one scrape balances
	bw.WriteString("# HELP cairn_capture_files_pruned_total Capture files deleted, by reason (retention: older than capture.retention_days; max_total_bytes: the oldest, to keep the files within capture.max_total_bytes).\n# TYPE cairn_capture_files_pruned_total counter\n")
	for i, n := range pruneReasonNames {
		bw.WriteString(`cairn_capture_files_pruned_total{reason="` + n + `"} ` + strconv.FormatUint(m.filesPruned[i].Load(), 10) + "\n")
	}
	bw.WriteString("# HELP cairn_capture_pruned_bytes_total Bytes of the capture files deleted, by reason.\n# TYPE cairn_capture_pruned_bytes_total counter\n")
	for i, n := range pruneReasonNames {
		bw.WriteString(`cairn_capture_pruned_bytes_total{reason="` + n + `"} ` + strconv.FormatUint(m.bytesPruned[i].Load(), 10) + "\n")
	}
	m.scores.write(bw)
	bw.WriteString("# HELP cairn_capture_sink_errors_total Failed capture sink operations (writes, flushes, batches), each retried.\n# TYPE cairn_capture_sink_errors_total counter\n")
	for i, n := range sinkNames {
		bw.WriteString(`cairn_capture_sink_errors_total{sink="` + n + `"} ` + strconv.FormatUint(m.sinkErrors[i].Load(), 10) + "\n")
	}
	bw.WriteString("# HELP cairn_capture_sink_failing Whether a sink's last write failed (1): records are held in memory and retried.\n# TYPE cairn_capture_sink_failing gauge\n")
	for i, n := range sinkNames {
		v := "0"
		if m.sinkFailing[i].Load() {
			v = "1"
		}
		bw.WriteString(`cairn_capture_sink_failing{sink="` + n + `"} ` + v + "\n")
	}
	bw.Flush()
}

func writeScalar(bw *bufio.Writer, name, help, typ string, v uint64) {
	bw.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n" + name + " " + strconv.FormatUint(v, 10) + "\n")
}

// family is one metric name with its label sets.
type family struct {
	name, help, typ string
	labels          []string
	buckets         []float64 // histograms only

	rw     sync.RWMutex
	series map[string]*series // label key → series, under rw
	n      int                // series created, under rw
}

// series is one label set's counter or histogram.
type series struct {
	values []string
	count  atomic.Uint64
	sum    atomic.Uint64 // float64 bits (histograms)
	bounds []float64     // histogram bucket upper bounds
	bucket []atomic.Uint64
}

func newFamily(name, help, typ string, labels []string, buckets []float64) *family {
	return &family{name: name, help: help, typ: typ, labels: labels, buckets: buckets}
}

// appendLabelKey appends the family's map key for values to dst.
func appendLabelKey(dst []byte, values []string) []byte {
	for i, v := range values {
		if i > 0 {
			dst = append(dst, 0xff)
		}
		dst = append(dst, v...)
	}
	return dst
}

// get returns the series for the label values, creating it if the family
// has room, else the "other" series. Looking up an existing series does
// not allocate: the key is built on the stack and m[string(b)] does not
// copy (issue 15: 4 allocations per record were label keys).
func (f *family) get(values ...string) *series {
	var buf [256]byte
	key := appendLabelKey(buf[:0], values)
	f.rw.RLock()
	s, ok := f.series[string(key)]
	f.rw.RUnlock()
	if ok {
		return s
	}
	f.rw.Lock()
	defer f.rw.Unlock()
	if s, ok := f.series[string(key)]; ok {
		return s
	}
	if f.n >= maxSeries {
		other := make([]string, len(values))
		for i := range other {
			other[i] = "other"
		}
		key = appendLabelKey(buf[:0], other)
		if s, ok := f.series[string(key)]; ok {
			return s
		}
		values = other
	}
	s = &series{values: slices.Clone(values)}
	if f.buckets != nil {
		s.bounds = f.buckets
		s.bucket = make([]atomic.Uint64, len(f.buckets))
	}
	if f.series == nil {
		f.series = map[string]*series{}
	}
	f.series[string(key)] = s
	f.n++
	return s
}

func (s *series) add(n uint64) { s.count.Add(n) }

func (s *series) observe(v float64) {
	for i, ub := range s.bounds {
		if v <= ub {
			s.bucket[i].Add(1)
			break
		}
	}
	s.count.Add(1)
	for {
		old := s.sum.Load()
		if s.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (f *family) write(bw *bufio.Writer) {
	f.rw.RLock()
	all := make([]*series, 0, len(f.series))
	for _, s := range f.series {
		all = append(all, s)
	}
	f.rw.RUnlock()
	bw.WriteString("# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.typ + "\n")
	slices.SortFunc(all, func(a, b *series) int { return slices.Compare(a.values, b.values) })
	for _, s := range all {
		labels := f.labelText(s.values)
		if f.buckets == nil {
			bw.WriteString(f.name + "{" + labels + "} " + strconv.FormatUint(s.count.Load(), 10) + "\n")
			continue
		}
		var cum uint64
		for i, ub := range f.buckets {
			cum += s.bucket[i].Load()
			bw.WriteString(f.name + "_bucket{" + labels + `,le="` + formatFloat(ub) + `"} ` + strconv.FormatUint(cum, 10) + "\n")
		}
		count := max(s.count.Load(), cum)
		bw.WriteString(f.name + "_bucket{" + labels + `,le="+Inf"} ` + strconv.FormatUint(count, 10) + "\n")
		bw.WriteString(f.name + "_sum{" + labels + "} " + formatFloat(math.Float64frombits(s.sum.Load())) + "\n")
		bw.WriteString(f.name + "_count{" + labels + "} " + strconv.FormatUint(count, 10) + "\n")
	}
}

func (f *family) labelText(values []string) string {
	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.labels[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(v))
		b.WriteByte('"')
	}
	return b.String()
}

// escapeLabel escapes a label value for the text format: backslash, double
// quote and newline; invalid UTF-8 becomes U+FFFD.
func escapeLabel(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
