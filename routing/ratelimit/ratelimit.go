// Package ratelimit enforces per-key budgets of requests per minute (RPM)
// and tokens per minute (TPM), in memory (Memory, one replica) or in Redis
// (Redis, one budget shared by every replica).
//
// Both limiters count in fixed one-minute windows aligned to the clock's
// minute (Memory: the injected clock; Redis: Redis's own TIME, so replicas
// with skewed clocks still agree). A request is admitted while the window
// has requests left and its token budget is not spent; Check counts the
// request. Tokens are known only after the response, so Charge adds the
// actual usage later; a reply that overshoots the budget still succeeds and
// the next request is refused. Charge is idempotent per request ID (for
// two minutes: see dedupRing). The Redis limiter spends slices of the
// window leased from Redis, so no request waits on Redis in the common
// case and the replicas together never exceed the limit (see lease.go).
//
// A key whose Limits has RPM and TPM both 0 is unlimited and costs nothing:
// no lock, no Redis call.
package ratelimit

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of refusal, as in OpenAI's 429 error type.
const (
	KindRequests = "requests"
	KindTokens   = "tokens"
)

// Window is the length of a rate-limit window.
const Window = time.Minute

// Limits is one key's budget. Zero RPM or TPM means that dimension is
// unlimited.
type Limits struct {
	RPM, TPM int
	// FailClosed refuses requests while the shared limiter (Redis) is
	// unreachable (past what the replica still holds of the window)
	// instead of admitting a per-replica share of what remains.
	FailClosed bool
}

// Decision is the outcome of one Check, with what the x-ratelimit-*
// headers report. Request fields are zero when RPM is 0, token fields when
// TPM is 0.
type Decision struct {
	Allowed bool
	// Kind is KindRequests or KindTokens when refused.
	Kind string

	LimitRequests, RemainingRequests int
	ResetRequests                    time.Duration
	LimitTokens, RemainingTokens     int
	ResetTokens                      time.Duration

	// RetryAfter is how long a refused client should wait.
	RetryAfter time.Duration
	// Degraded is set when the decision was made without Redis: Redis is
	// unreachable, or (NoLease) no lease came within the deadline.
	Degraded bool
	// NoLease is set on a refusal because the replica held no budget for
	// the key and no lease arrived from Redis within the deadline.
	NoLease bool
	// Reservation is what an admitted request holds of the key's token
	// budget (Redis limiter); pass it to Charge when the request ends.
	Reservation Reservation
}

// decide builds a Decision from a window's counts after the check (the
// request counted if admitted) and the time left in the window.
func decide(l Limits, kind string, reqs, tokens int, reset time.Duration) Decision {
	d := Decision{Allowed: kind == "", Kind: kind}
	if l.RPM > 0 {
		d.LimitRequests = l.RPM
		d.RemainingRequests = max(l.RPM-reqs, 0)
		d.ResetRequests = reset
	}
	if l.TPM > 0 {
		d.LimitTokens = l.TPM
		d.RemainingTokens = max(l.TPM-tokens, 0)
		d.ResetTokens = reset
	}
	if !d.Allowed {
		d.RetryAfter = reset
	}
	return d
}

// metrics counts refusals per key and kind. Keys are configured key
// names, so the series are bounded by the config.
type metrics struct {
	limited sync.Map // key name -> *limitedCounts
	// dedupDropped counts charged request IDs the de-duplication ring had
	// no room to remember (their charge counted; a repeat would too).
	dedupDropped atomic.Uint64
}

type limitedCounts struct {
	requests, tokens atomic.Uint64
}

func (m *metrics) countLimited(key, kind string) {
	v, ok := m.limited.Load(key)
	if !ok {
		v, _ = m.limited.LoadOrStore(key, new(limitedCounts))
	}
	c := v.(*limitedCounts)
	if kind == KindTokens {
		c.tokens.Add(1)
	} else {
		c.requests.Add(1)
	}
}

func (m *metrics) writePrometheus(w io.Writer) {
	fmt.Fprint(w, "# HELP cairn_ratelimit_limited_total Requests refused by a key's rate limit, by key and kind (requests or tokens).\n"+
		"# TYPE cairn_ratelimit_limited_total counter\n")
	var keys []string
	m.limited.Range(func(k, _ any) bool {
		keys = append(keys, k.(string))
		return true
	})
	slices.Sort(keys)
	for _, k := range keys {
		v, _ := m.limited.Load(k)
		c := v.(*limitedCounts)
		name := escapeLabel(k)
		fmt.Fprintf(w, "cairn_ratelimit_limited_total{key=\"%s\",kind=\"requests\"} %d\n", name, c.requests.Load())
		fmt.Fprintf(w, "cairn_ratelimit_limited_total{key=\"%s\",kind=\"tokens\"} %d\n", name, c.tokens.Load())
	}
	fmt.Fprintf(w, "# HELP cairn_ratelimit_dedup_dropped_total Charged request IDs not remembered for de-duplication because a ring bucket was full.\n"+
		"# TYPE cairn_ratelimit_dedup_dropped_total counter\ncairn_ratelimit_dedup_dropped_total %d\n", m.dedupDropped.Load())
}

// escapeLabel escapes a Prometheus label value.
func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
