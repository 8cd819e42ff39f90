package incidents

import (
	"maps"
	"slices"
	"time"

	"github.com/cairnhq/cairn/capture"
)

// tracker accumulates an incident's scope and cost from every record on
// its route while the incident is open or mitigated, and collects the
// "after" samples once it is mitigated. It lives in the detector and is
// guarded by the detector's mutex.
type tracker struct {
	key, route, signal, cohort string
	pred                       predicate
	since                      time.Time
	created                    time.Time

	requests, failed                            int64
	failedPrompt, failedCompletion, totalTokens int64
	failedCost, totalCost                       float64
	failedPriced, totalPriced                   bool
	byKey, byClient                             map[string]int64
	byTarget                                    map[targetKey]int64
	sampled                                     bool
	users                                       map[string]struct{} // user hashes of failed requests
	usersOver, noUser                           int64               // failed requests past the users cap; without a user

	collectAfter bool
	afterSince   time.Time
	after        []*capture.Record

	version int64 // bumps on every change, so the manager persists only news
}

type targetKey struct{ provider, model string }

const otherLabel = "(other)"

func (t *tracker) observe(r *capture.Record, c *class) {
	t.version++
	t.requests++
	t.totalTokens += recordTokens(r)
	if r.CostUSD != nil {
		t.totalCost += *r.CostUSD
		t.totalPriced = true
	}
	if t.pred.match(r, c) {
		t.countFailed(r)
	}
	if t.collectAfter && c.ok && len(t.after) < samplesPerPhase && !r.ReceivedAt.Before(t.afterSince) {
		t.after = append(t.after, r)
	}
}

func (t *tracker) countFailed(r *capture.Record) {
	t.failed++
	if r.CostUSD != nil {
		t.failedCost += *r.CostUSD
		t.failedPriced = true
	}
	t.failedPrompt += int64(r.Usage.PromptTokens)
	t.failedCompletion += int64(r.Usage.CompletionTokens)
	countKey(t.byKey, r.Key)
	countKey(t.byClient, r.Client)
	k := targetKey{r.Provider, modelLabel(r.Target, r.Provider, r.Model)}
	if _, ok := t.byTarget[k]; ok || len(t.byTarget) < maxScopeKeys {
		t.byTarget[k]++
	} else {
		t.byTarget[targetKey{provider: otherLabel}]++
	}
	t.countUser(r.UserHash)
}

// countUser remembers the user of a failed request (issue 14.7).
func (t *tracker) countUser(h string) {
	switch _, seen := t.users[h]; {
	case h == "":
		t.noUser++
	case seen:
	case len(t.users) < maxTrackedUsers:
		t.users[h] = struct{}{}
	default:
		t.usersOver++
	}
}

func countKey(m map[string]int64, k string) {
	if k == "" {
		k = "(none)"
	}
	if _, ok := m[k]; ok || len(m) < maxScopeKeys {
		m[k]++
		return
	}
	m[otherLabel]++
}

// newTracker registers a tracker for key. Call with d.mu held.
func (d *detector) newTracker(rd *routeDet, key, signal, cohort string, p predicate, since time.Time) *tracker {
	t := &tracker{
		key: key, route: rd.name, signal: signal, cohort: cohort, pred: p, since: since, created: since.Add(d.cfg.window),
		byKey: map[string]int64{}, byClient: map[string]int64{}, byTarget: map[targetKey]int64{},
		users: map[string]struct{}{},
	}
	d.trackers[key] = t
	rd.trackers = append(rd.trackers, t)
	return t
}

// seed counts what the route's windows already hold into a new tracker.
// Call with d.mu held.
func (d *detector) seed(rd *routeDet, t *tracker) {
	for _, c := range rd.cohorts {
		t.requests += c.s.cur.n
		// Every request's tokens, failed ones too: the failed tokens
		// counted below are part of the total (issue 14.8).
		t.totalTokens += c.s.cur.tok
		if c.s.cur.priced > 0 {
			t.totalCost += c.s.cur.cost
			t.totalPriced = true
		}
		switch {
		case isRateSignal(t.pred.sig) || t.pred.sig == sigDeclared:
			var matched int64
			c.s.inWindow(func(b *bucket) {
				if len(b.bad) >= maxBadPerBucket {
					t.sampled = true
				}
				for _, r := range b.bad {
					if t.pred.matchRecord(r) {
						t.countFailed(r)
						matched++
					}
				}
			})
			if isRateSignal(t.pred.sig) {
				// The count stays exact even when a bucket kept only some
				// records.
				t.failed += c.s.cur.bad(t.pred.sig) - matched
			}
		case t.pred.sig == sigLatency:
			t.failed += c.s.cur.above(t.pred.thr)
			t.sampled = true
		default:
			for _, r := range c.s.recentRecords() {
				if !r.ReceivedAt.Before(t.since) && t.pred.matchRecord(r) {
					t.countFailed(r)
				}
			}
			t.sampled = true
		}
	}
	t.version++
}

// ensureTracker returns the tracker for key, creating an empty one.
func (d *detector) ensureTracker(route, key, signal, cohort string, p predicate, since time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.trackers[key] != nil {
		return
	}
	d.newTracker(d.route(route), key, signal, cohort, p, since)
}

// dropTracker stops tracking key.
func (d *detector) dropTracker(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.trackers[key]
	if t == nil {
		return
	}
	delete(d.trackers, key)
	if rd := d.routes[t.route]; rd != nil {
		rd.trackers = slices.DeleteFunc(rd.trackers, func(x *tracker) bool { return x == t })
	}
}

// dropOrphans drops trackers created before cutoff that no active
// incident uses (their fire was dropped, or the incident is gone).
func (d *detector) dropOrphans(active map[string]bool, cutoff time.Time) {
	d.mu.Lock()
	var orphans []string
	for k, t := range d.trackers {
		if !active[k] && t.created.Before(cutoff) {
			orphans = append(orphans, k)
		}
	}
	d.mu.Unlock()
	for _, k := range orphans {
		d.dropTracker(k)
	}
}

// startAfter makes the tracker collect successes received at or after
// since as "after" samples.
func (d *detector) startAfter(key string, since time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.trackers[key]; t != nil && !t.collectAfter {
		t.collectAfter, t.afterSince = true, since
		t.version++
	}
}

// scopeSnapshot is a tracker's counts at one moment, owned by the caller.
type scopeSnapshot struct {
	scope   Scope
	cost    Cost
	after   []*capture.Record
	version int64
	ok      bool
}

func (t *tracker) snapshot() scopeSnapshot {
	s := scopeSnapshot{version: t.version, ok: true}
	s.scope = Scope{
		Requests: t.requests, Failed: t.failed, Sampled: t.sampled,
		ByKey: maps.Clone(t.byKey), ByClient: maps.Clone(t.byClient), ByTarget: make(map[string]int64, len(t.byTarget)),
	}
	s.scope.Users, s.scope.FailedWithoutUser = int64(len(t.users))+t.usersOver, t.noUser
	s.scope.UsersAtMost = t.usersOver > 0
	if len(t.users) <= maxListedUsers && t.usersOver == 0 {
		s.scope.UserHashes = slices.Sorted(maps.Keys(t.users))
	}
	for k, v := range t.byTarget {
		name := k.provider
		if k.model != "" {
			name += "/" + k.model
		}
		s.scope.ByTarget[name] += v
	}
	s.cost = Cost{
		FailedRequests: t.failed, FailedTokens: t.failedPrompt + t.failedCompletion,
		FailedPromptTokens: t.failedPrompt, FailedCompletionTokens: t.failedCompletion,
		TotalTokens: t.totalTokens,
	}
	if t.failedPriced {
		v := t.failedCost
		s.cost.FailedCostUSD = &v
	}
	if t.totalPriced {
		v := t.totalCost
		s.cost.TotalCostUSD = &v
	}
	s.after = slices.Clone(t.after)
	return s
}

// trackerSnapshot returns key's counts when they changed since version.
func (d *detector) trackerSnapshot(key string, version int64) scopeSnapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.trackers[key]
	if t == nil || t.version == version {
		return scopeSnapshot{}
	}
	return t.snapshot()
}
