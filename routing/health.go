package routing

import (
	"sync"
	"sync/atomic"
	"time"
)

// Circuit states as reported by Health.State.
const (
	StateClosed   = "closed"
	StateOpen     = "open"
	StateHalfOpen = "half_open"
)

// Default circuit-breaker settings, after Envoy's outlier detection.
const (
	DefaultThreshold = 5
	DefaultCooldown  = 30 * time.Second
)

// Breakers holds circuit-breaker health per upstream (provider and upstream
// model). One Breakers lives as long as the gateway and is shared by every
// Table built from it, so a reload or a rollback keeps each upstream's
// health. It is safe for concurrent use; Health lookups lock and happen
// only while a Table is built, never on the request path.
type Breakers struct {
	threshold int64
	cooldown  int64 // nanoseconds
	now       func() time.Time
	epoch     time.Time

	mu sync.Mutex
	m  map[string]*Health
}

// NewBreakers returns breakers that open a circuit after threshold
// consecutive failures, keep it open for cooldown, then let exactly one
// probe request through (half-open): the probe's success closes the
// circuit, its failure re-opens it for another cooldown. A probe that never
// reports (a canceled request) is replaced by a new one after cooldown.
// threshold <= 0 means 5, cooldown <= 0 means 30s, a nil now means
// time.Now.
func NewBreakers(threshold int, cooldown time.Duration, now func() time.Time) *Breakers {
	if threshold <= 0 {
		threshold = DefaultThreshold
	}
	if cooldown <= 0 {
		cooldown = DefaultCooldown
	}
	if now == nil {
		now = time.Now
	}
	return &Breakers{
		threshold: int64(threshold), cooldown: int64(cooldown), now: now,
		epoch: now(), m: make(map[string]*Health),
	}
}

// Health returns the health of provider/model, creating it on first use.
// The same pair always yields the same *Health. An empty model stands for
// a target that passes the client's model name through.
func (b *Breakers) Health(provider, model string) *Health {
	k := provider + "\x00" + model
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := b.m[k]
	if !ok {
		h = &Health{b: b}
		b.m[k] = h
	}
	return h
}

// since returns the nanoseconds from the breakers' epoch to now, never
// negative, so a clock that steps back cannot underflow the packed word.
func (b *Breakers) since() uint64 {
	d := b.now().Sub(b.epoch)
	if d < 0 {
		return 0
	}
	return uint64(d)
}

// Health is one upstream's circuit breaker. Its methods are lock-free
// (typed atomics) and safe for concurrent use.
//
// The state and the time it was entered are packed in one word so that a
// transition is a single CompareAndSwap: low 2 bits the state, the rest
// nanoseconds since the Breakers' epoch (good for 146 years).
type Health struct {
	b     *Breakers
	st    atomic.Uint64
	fails atomic.Int64 // consecutive failures while closed
}

const (
	stClosed uint64 = iota
	stOpen
	stHalfOpen
)

func pack(state, at uint64) uint64 { return at<<2 | state }
func unpack(w uint64) (state, at uint64) {
	return w & 3, w >> 2
}

// Allow reports whether a request may be sent to this upstream now. A
// closed circuit allows everything; an open one allows nothing until its
// cooldown has passed, then exactly one caller gets true (the probe) and
// the circuit is half-open until that probe reports Success or Failure.
func (h *Health) Allow() bool {
	w := h.st.Load()
	state, at := unpack(w)
	if state == stClosed {
		return true
	}
	now := h.b.since()
	if now < at || now-at < uint64(h.b.cooldown) {
		return false
	}
	// Open and cooled down, or half-open with a probe that never reported
	// within a cooldown: this caller becomes the probe.
	return h.st.CompareAndSwap(w, pack(stHalfOpen, now))
}

// Success records a successful response. It resets the consecutive
// failure count and closes a half-open circuit. A success that arrives
// while the circuit is open came from a request sent before it opened and
// is ignored.
func (h *Health) Success() {
	if h.fails.Load() != 0 {
		h.fails.Store(0)
	}
	w := h.st.Load()
	if state, _ := unpack(w); state == stHalfOpen {
		h.st.CompareAndSwap(w, pack(stClosed, 0))
	}
}

// Failure records a failed attempt (connect error, timeout, 5xx or 429).
// The threshold-th consecutive failure opens a closed circuit; a failure
// while half-open re-opens it for another cooldown.
func (h *Health) Failure() {
	w := h.st.Load()
	state, _ := unpack(w)
	switch state {
	case stClosed:
		if h.fails.Add(1) >= h.b.threshold {
			h.st.CompareAndSwap(w, pack(stOpen, h.b.since()))
		}
	case stHalfOpen:
		h.st.CompareAndSwap(w, pack(stOpen, h.b.since()))
	}
}

// State returns "closed", "open" or "half_open". An open circuit whose
// cooldown has passed reports half_open: the next request is the probe.
func (h *Health) State() string {
	state, at := unpack(h.st.Load())
	switch state {
	case stClosed:
		return StateClosed
	case stOpen:
		if now := h.b.since(); now >= at && now-at >= uint64(h.b.cooldown) {
			return StateHalfOpen
		}
		return StateOpen
	default:
		return StateHalfOpen
	}
}

// Failures returns the current count of consecutive failures.
func (h *Health) Failures() int { return int(h.fails.Load()) }
