// Package incidents detects failure spikes in the capture records, opens
// incidents that freeze the live route, prompt and flag state with the
// evidence a postmortem needs, rolls failing canary cohorts back through an
// interface, notifies webhooks, keeps the audit log of state changes and
// renders a postmortem draft.
//
// The Manager reads every capture.Record on the capture writer's goroutine
// (Observe is cheap and never does I/O) and does the rest on its own
// goroutines. Incidents are JSON files under data_dir/incidents/, written
// atomically on every update, and also live in Redis when it is configured
// so that replicas share one incident per route and signal.
package incidents

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
)

// Incident statuses.
const (
	StatusOpen      = "open"
	StatusMitigated = "mitigated"
	StatusResolved  = "resolved"
)

// Layers: where an incident most likely started.
const (
	LayerProvider  = "provider"
	LayerTransport = "transport"
	LayerContract  = "contract"
	LayerRateLimit = "rate_limit"
	LayerRouting   = "routing"
)

// ErrNotFound is returned for an unknown incident ID.
var ErrNotFound = errors.New("incident not found")

// ErrUnknownRoute is returned by Declare for a route the live state lacks.
var ErrUnknownRoute = errors.New("unknown route")

// Incident is one incident as stored and served. State, Trigger and
// Changes are frozen when it opens; FrozenHash covers them. Everything
// else grows as the incident goes on (timeline, actions, waves, scope,
// after samples). An *Incident returned by this package is the caller's
// own copy.
type Incident struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	OpenedAt       time.Time  `json:"opened_at"`
	FirstFailureAt time.Time  `json:"first_failure_at"`
	DetectedAt     time.Time  `json:"detected_at"`
	MitigatedAt    *time.Time `json:"mitigated_at"` // the latest mitigation; null while open
	ResolvedAt     *time.Time `json:"resolved_at"`
	// Resolution says how a resolved incident ended: recovered (healthy
	// traffic after a mitigation) or no_traffic (the failing scope went
	// quiet while open: nothing was mitigated or shown fixed).
	Resolution string  `json:"resolution,omitempty"`
	Trigger    Trigger `json:"trigger"`
	// Severity is investigate or page (issue 16.4): the level the signal
	// reached, raised to page when it crosses that level later.
	Severity configs.Severity `json:"severity"`
	// Class is "security" for incidents whose harm is exposure (the
	// pii_leak_rate signal), else empty.
	Class string `json:"class,omitempty"`
	// Symptom is one plain sentence saying what broke.
	Symptom string `json:"symptom"`
	// Layer is where it most likely started: provider, transport,
	// contract, rate_limit or routing. LayerReason says why.
	Layer       string `json:"layer"`
	LayerReason string `json:"layer_reason,omitempty"`
	// Reason is the operator's reason for an incident declared by hand.
	Reason string `json:"reason,omitempty"`
	// State is the live state at detection, before any rollback.
	State configs.State `json:"state"`
	// Changes are the audit entries in the lookback before the first
	// failure that touched this route or the whole gateway (their changes
	// narrowed to those).
	Changes  []AuditEntry `json:"changes"`
	Samples  Samples      `json:"samples"`
	Scope    Scope        `json:"scope"`
	Cost     Cost         `json:"cost"`
	Timeline []Event      `json:"timeline"`
	Actions  []Action     `json:"actions"`
	// Waves lists every detection of this route and signal while the
	// incident was open or mitigated; wave 1 opened it.
	Waves      []Wave `json:"waves"`
	FrozenHash string `json:"frozen_hash"`
	// Replica opened the incident.
	Replica string `json:"replica"`
	// Contributions are each replica's own scope and cost; Scope and Cost
	// are their sum.
	Contributions map[string]Contribution `json:"contributions,omitempty"`
	// Version counts updates; UpdatedAt is the last one.
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Trigger is the signal that opened the incident. Observed, Threshold and
// Baseline share a unit: a fraction of requests for rates, milliseconds
// for latency_p99, tokens for tokens_per_success.
type Trigger struct {
	Signal    string           `json:"signal"`
	Route     string           `json:"route"`
	Cohort    string           `json:"cohort"` // empty: the route as a whole
	Target    string           `json:"target"` // provider/model with the most failures
	Observed  float64          `json:"observed"`
	Threshold float64          `json:"threshold"`
	Baseline  float64          `json:"baseline"`
	Window    configs.Duration `json:"window"`
	Requests  int64            `json:"requests"`
	// Failed is the number of the window's requests that were bad for the
	// signal.
	Failed int64  `json:"failed"`
	Unit   string `json:"unit"` // fraction, ms, tokens
	// Ratio is the configured ratio of latency and token signals.
	Ratio float64 `json:"ratio,omitempty"`
	// BaselineSource says what the baseline was measured on.
	BaselineSource string `json:"baseline_source,omitempty"`
	// BaselineN is how many requests (scores, for eval_drift) the
	// baseline was measured on.
	BaselineN int64 `json:"baseline_n,omitempty"`
	// Severity is the level the signal reached at detection (the
	// incident's Severity may be raised later).
	Severity configs.Severity `json:"severity,omitempty"`
	// EvalGate is what the eval gate knew, for eval_drift.
	EvalGate *EvalGate `json:"eval_gate,omitempty"`
}

// Samples are masked capture records, oldest first.
type Samples struct {
	Before []capture.Record `json:"before"`
	During []capture.Record `json:"during"`
	After  []capture.Record `json:"after"`
	// Scores are the eval scores of the during samples, lowest first
	// (eval_drift only): a sample whose record was no longer in memory
	// is listed here by its ID alone.
	Scores []SampleScore `json:"scores,omitempty"`
}

// SampleScore is one low eval score of an eval_drift incident.
type SampleScore struct {
	RequestID string  `json:"request_id"`
	Name      string  `json:"name"`
	Value     float64 `json:"value"`
}

// Scope is the traffic on the route from the detection window's start
// until the incident resolved. By* count the failed requests.
type Scope struct {
	Requests int64            `json:"requests"`
	Failed   int64            `json:"failed"`
	ByKey    map[string]int64 `json:"by_key"`
	ByClient map[string]int64 `json:"by_client"`
	ByTarget map[string]int64 `json:"by_target"`
	// Sampled is true when the by_* maps were partly rebuilt from a
	// sample of the window (the totals are exact).
	Sampled bool `json:"sampled,omitempty"`
	// Users is how many distinct end users sent a failed request, told
	// apart by the keyed hash of the request's user or safety_identifier
	// (capture.UserHasher); FailedWithoutUser counts failed requests that
	// named no user. UsersAtMost marks Users as an upper bound: replicas
	// (or restarts) whose user lists were too long to merge were summed.
	Users             int64 `json:"users"`
	UsersAtMost       bool  `json:"users_at_most,omitempty"`
	FailedWithoutUser int64 `json:"failed_without_user"`
	// UserHashes are the hashes counted in Users when there are at most
	// maxListedUsers of them, so that replicas' counts merge exactly.
	UserHashes []string `json:"user_hashes,omitempty"`
}

// Cost is what the failed requests spent.
type Cost struct {
	FailedRequests         int64 `json:"failed_requests"`
	FailedTokens           int64 `json:"failed_tokens"`
	FailedPromptTokens     int64 `json:"failed_prompt_tokens"`
	FailedCompletionTokens int64 `json:"failed_completion_tokens"`
	// TotalTokens is every token on the route during the incident.
	TotalTokens int64 `json:"total_tokens"`
	// FailedCostUSD and TotalCostUSD are the same in money (cost_usd of
	// the records, priced by pricing:); null when none of them was
	// priced.
	FailedCostUSD *float64 `json:"failed_cost_usd"`
	TotalCostUSD  *float64 `json:"total_cost_usd"`
}

// Contribution is one replica's share of an incident's scope and cost.
type Contribution struct {
	Scope Scope `json:"scope"`
	Cost  Cost  `json:"cost"`
}

// Event kinds of the timeline.
const (
	EventChange       = "change"
	EventFirstFailure = "first_failure"
	EventDetection    = "detection"
	EventDeclared     = "declared"
	EventRollback     = "rollback"
	EventMitigation   = "mitigation"
	EventRecovery     = "recovery"
	EventWave         = "wave"
	EventSignal       = "signal"
)

// Event is one line of the timeline (UTC).
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
	Replica string    `json:"replica,omitempty"`
}

// Action is something the gateway did about the incident.
type Action struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // rollback, webhook
	Message string    `json:"message"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Replica string    `json:"replica,omitempty"`
}

// Wave is one detection of the incident's route and signal.
type Wave struct {
	N          int       `json:"n"`
	DetectedAt time.Time `json:"detected_at"`
	Signal     string    `json:"signal"`
	Cohort     string    `json:"cohort"`
	Target     string    `json:"target"`
	Observed   float64   `json:"observed"`
	Threshold  float64   `json:"threshold"`
	Requests   int64     `json:"requests"`
	Replica    string    `json:"replica,omitempty"`
	RolledBack bool      `json:"rolled_back"`
}

// Summary is an incident's line in a list.
type Summary struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Route       string     `json:"route"`
	Cohort      string     `json:"cohort"`
	Signal      string     `json:"signal"`
	OpenedAt    time.Time  `json:"opened_at"`
	MitigatedAt *time.Time `json:"mitigated_at"`
	ResolvedAt  *time.Time `json:"resolved_at"`
	Resolution  string     `json:"resolution,omitempty"`
	Symptom     string     `json:"symptom"`
	Layer       string     `json:"layer"`
	Waves       int        `json:"waves"`
	// Severity and Class as the incident has them now.
	Severity configs.Severity `json:"severity"`
	Class    string           `json:"class,omitempty"`
	Trigger  Trigger          `json:"trigger"`
	Replica  string           `json:"replica"`
	// FirstFailureAt, DetectedAt, Failed and FailedCostUSD are the
	// incident's, for the console's list (issue 18).
	FirstFailureAt time.Time `json:"first_failure_at"`
	DetectedAt     time.Time `json:"detected_at"`
	Failed         int64     `json:"failed"`
	FailedCostUSD  *float64  `json:"failed_cost_usd"`
}

// Summary returns the incident's list entry.
func (i *Incident) Summary() Summary {
	return Summary{
		ID: i.ID, Status: i.Status, Route: i.Trigger.Route, Cohort: i.Trigger.Cohort,
		Signal: i.Trigger.Signal, OpenedAt: i.OpenedAt, MitigatedAt: i.MitigatedAt,
		ResolvedAt: i.ResolvedAt, Resolution: i.Resolution, Symptom: i.Symptom, Layer: i.Layer, Waves: len(i.Waves),
		Trigger: i.Trigger, Replica: i.Replica, Severity: i.Severity, Class: i.Class,
		FirstFailureAt: i.FirstFailureAt, DetectedAt: i.DetectedAt, Failed: i.Scope.Failed, FailedCostUSD: i.Cost.FailedCostUSD,
	}
}

// frozenHash is the hex SHA-256 of the canonical JSON of state, trigger
// and changes: objects with sorted keys, numbers as written.
func frozenHash(st configs.State, tr Trigger, ch []AuditEntry) (string, error) {
	if ch == nil {
		ch = []AuditEntry{}
	}
	b, err := json.Marshal(struct {
		State   configs.State `json:"state"`
		Trigger Trigger       `json:"trigger"`
		Changes []AuditEntry  `json:"changes"`
	}{st, tr, ch})
	if err != nil {
		return "", fmt.Errorf("encode frozen fields: %w", err)
	}
	c, err := canonicalJSON(b)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// canonicalJSON re-encodes b with sorted object keys and numbers kept as
// written, so the hash does not depend on Go types (a weight read back as
// float64 hashes like the int it was written as).
func canonicalJSON(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonicalize: %w", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonicalize: %w", err)
	}
	return out, nil
}

// seal computes the frozen hash; call once, when the incident opens.
func (i *Incident) seal() error {
	h, err := frozenHash(i.State, i.Trigger, i.Changes)
	if err != nil {
		return err
	}
	i.FrozenHash = h
	return nil
}

// Verify recomputes the frozen hash and returns an error when the state,
// trigger or changes differ from what was frozen when the incident opened.
func (i *Incident) Verify() error {
	if i.FrozenHash == "" {
		return fmt.Errorf("verify incident %s: no frozen hash", i.ID)
	}
	h, err := frozenHash(i.State, i.Trigger, i.Changes)
	if err != nil {
		return fmt.Errorf("verify incident %s: %w", i.ID, err)
	}
	if h != i.FrozenHash {
		return fmt.Errorf("verify incident %s: state, trigger or changes were altered after opening (hash %s, recorded %s)", i.ID, h, i.FrozenHash)
	}
	return nil
}

// clone returns a deep copy.
func (i *Incident) clone() *Incident {
	b, err := json.Marshal(i)
	if err != nil {
		panic("BUG: incident does not encode: " + err.Error())
	}
	var c Incident
	if err := json.Unmarshal(b, &c); err != nil {
		panic("BUG: incident does not decode: " + err.Error())
	}
	return &c
}

// sumContributions sets Scope and Cost to the sum of the replicas' shares.
func (i *Incident) sumContributions() {
	var s Scope
	var c Cost
	s.ByKey, s.ByClient, s.ByTarget = map[string]int64{}, map[string]int64{}, map[string]int64{}
	for _, x := range i.Contributions {
		s.Requests += x.Scope.Requests
		s.Failed += x.Scope.Failed
		s.Sampled = s.Sampled || x.Scope.Sampled
		s.FailedWithoutUser += x.Scope.FailedWithoutUser
		for k, v := range x.Scope.ByKey {
			s.ByKey[k] += v
		}
		for k, v := range x.Scope.ByClient {
			s.ByClient[k] += v
		}
		for k, v := range x.Scope.ByTarget {
			s.ByTarget[k] += v
		}
		c.FailedRequests += x.Cost.FailedRequests
		c.FailedTokens += x.Cost.FailedTokens
		c.FailedPromptTokens += x.Cost.FailedPromptTokens
		c.FailedCompletionTokens += x.Cost.FailedCompletionTokens
		c.TotalTokens += x.Cost.TotalTokens
		c.FailedCostUSD = addUSD(c.FailedCostUSD, x.Cost.FailedCostUSD)
		c.TotalCostUSD = addUSD(c.TotalCostUSD, x.Cost.TotalCostUSD)
	}
	s.Users, s.UsersAtMost, s.UserHashes = mergeUsers(i.Contributions)
	i.Scope, i.Cost = s, c
}

// sample returns an owned copy of a record without its unmasked inputs.
func sample(r *capture.Record) capture.Record {
	c := *r
	c.Raw = nil
	return c
}

func samples(rs []*capture.Record) []capture.Record {
	out := make([]capture.Record, 0, len(rs))
	for _, r := range rs {
		out = append(out, sample(r))
	}
	return out
}

// addUSD adds two nullable amounts: null only when both are.
func addUSD(a, b *float64) *float64 {
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil:
		v := *b
		return &v
	case b == nil:
		v := *a
		return &v
	}
	v := *a + *b
	return &v
}
