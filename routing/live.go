package routing

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// Live holds the current Table: the config's table (the base) with the
// fleet's overrides applied. Requests Load it once and use that snapshot
// to the end. A reload installs a new base with Reload, a mitigation
// adds an override with Mitigate or Rollback, and a change another replica
// stored arrives through Run; each rebuilds the table from base and
// overrides under one lock, so none can undo another (issue 17).
// It is safe for concurrent use and lives as long as the gateway.
type Live struct {
	p   atomic.Pointer[Table]
	gen atomic.Uint64 // changes of p, counted after each is visible

	mu      sync.Mutex
	base    *Table
	set     map[string]configs.Override // key → override, as this replica knows them
	version int64                       // the store's version set reflects
	// pending are local changes the store has not accepted yet (Redis
	// down): re-applied over every set loaded and retried by Run.
	pending map[string]pendingOp
	store   OverrideStore
	cache   *FileStore // local copy of a shared store's set; nil without
	log     *slog.Logger
	now     func() time.Time
	replica string
	loaded  atomic.Bool
	// lastWrite is when the store last accepted a change from here.
	lastWrite time.Time
}

type pendingOp struct {
	o   configs.Override
	del bool
}

// LiveOptions configure the override store of a Live.
type LiveOptions struct {
	// Store keeps the overrides; nil keeps them in memory only.
	Store OverrideStore
	// Cache, with a shared Store, keeps a local copy of the set that a
	// replica starts from when the Store cannot be read.
	Cache   *FileStore
	Logger  *slog.Logger
	Now     func() time.Time
	Replica string
}

// overrideTimeout bounds one store call.
const overrideTimeout = time.Second

// PollEvery is how often Run reads the store's version as a backstop for
// a lost change notice.
const PollEvery = 500 * time.Millisecond

// NewLive returns a Live whose base is t, with no overrides and no store.
func NewLive(t *Table) *Live {
	l := &Live{base: t, set: map[string]configs.Override{}, pending: map[string]pendingOp{},
		log: slog.New(slog.DiscardHandler), now: time.Now}
	l.p.Store(t)
	l.loaded.Store(true)
	return l
}

// UseStore sets where overrides are kept. Call it before Load or any
// change; the overrides are not read until Load.
func (l *Live) UseStore(o LiveOptions) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.store, l.cache = o.Store, o.Cache
	if o.Logger != nil {
		l.log = o.Logger
	}
	if o.Now != nil {
		l.now = o.Now
	}
	l.replica = o.Replica
	l.loaded.Store(o.Store == nil)
}

// Ready reports whether the stored overrides were applied (from the store,
// or from the local copy when the store could not be read).
func (l *Live) Ready() bool { return l.loaded.Load() }

// Load returns the current table.
func (l *Live) Load() *Table { return l.p.Load() }

// Generation counts the changes of the current table (reloads, overrides
// set and cleared). It is incremented after the new table is visible, so a
// reader that reads Generation and then Load never pairs a generation
// with a table older than it: one that sees the same generation twice may
// skip rebuilding what it derived from the table.
func (l *Live) Generation() uint64 { return l.gen.Load() }

// LoadOverrides reads the store and applies its set. When the store fails
// and a local copy exists, the copy is applied (and Ready turns true); the
// store's error is returned either way.
func (l *Live) LoadOverrides(ctx context.Context) error {
	if l.store == nil {
		return nil
	}
	err := l.sync(ctx, true)
	if err == nil || l.cache == nil || l.loaded.Load() || !l.cache.exists() {
		// No local copy (a first start): not ready until the store
		// answers, rather than serve what the fleet rolled back.
		return err
	}
	ovs, v, cerr := l.cache.Load(ctx)
	if cerr != nil {
		return err
	}
	l.mu.Lock()
	if !l.loaded.Load() {
		l.replaceSet(ovs, 0)
		l.log.Warn("override store unreadable; applied the local copy", "overrides", len(ovs), "copy_version", v, "err", err)
		l.loaded.Store(true)
	}
	l.mu.Unlock()
	return err
}

// Run applies the changes other replicas store, within PollEvery of the
// change (at once when the store announces it), and retries local changes
// the store refused, until ctx ends.
func (l *Live) Run(ctx context.Context) {
	if l.store == nil {
		return
	}
	t := time.NewTicker(PollEvery)
	defer t.Stop()
	changed := l.store.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
		l.flushPending(ctx)
		if err := l.sync(ctx, false); err != nil {
			l.log.Debug("override sync failed", "err", err)
		}
	}
}

// sync loads the store's set and applies it when it is newer than the one
// applied (or always, with force).
func (l *Live) sync(ctx context.Context, force bool) error {
	readAt := time.Now()
	c, cancel := context.WithTimeout(ctx, overrideTimeout)
	ovs, v, err := l.store.Load(c)
	cancel()
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v < l.version && readAt.After(l.lastWrite) {
		// The store went back (a Redis restarted without persistence,
		// or flushed): the mitigations this replica holds are written
		// again rather than lost.
		l.log.Warn("override store lost its set; writing back the overrides held here", "store_version", v, "known_version", l.version, "overrides", len(l.set))
		for k, o := range l.set {
			l.pending[k] = pendingOp{o: o}
		}
		l.version = v
	}
	if v < l.version || v == l.version && !force && l.loaded.Load() {
		return nil // a read older than a change made here since
	}
	l.replaceSet(ovs, v)
	l.loaded.Store(true)
	return nil
}

// replaceSet makes ovs (at version v) plus the pending local changes the
// set, and rebuilds. Caller holds mu.
func (l *Live) replaceSet(ovs []configs.Override, v int64) {
	set := make(map[string]configs.Override, len(ovs))
	for _, o := range ovs {
		set[o.Key()] = o
	}
	for k, op := range l.pending {
		if op.del {
			if cur, ok := set[k]; ok && cur.Basis == op.o.Basis {
				delete(set, k)
			}
			continue
		}
		set[k] = op.o
	}
	changed := !maps.EqualFunc(set, l.set, func(a, b configs.Override) bool { return overrideEqual(&a, &b) })
	l.set, l.version = set, v
	if changed || !l.loaded.Load() {
		l.rebuild()
	}
}

func overrideEqual(a, b *configs.Override) bool {
	pa, pb := a.Prompt, b.Prompt
	a2, b2 := *a, *b
	a2.Prompt, b2.Prompt = nil, nil
	if a2 != b2 {
		return false
	}
	return pa == nil && pb == nil || pa != nil && pb != nil && *pa == *pb
}

// rebuild stores base with the set applied and saves the local copy.
// Caller holds mu.
func (l *Live) rebuild() {
	ovs := l.list()
	l.p.Store(l.base.applyOverrides(ovs))
	l.gen.Add(1)
	if l.cache != nil {
		if err := l.cache.Save(ovs, l.version); err != nil {
			l.log.Warn("save local copy of overrides", "err", err)
		}
	}
}

func (l *Live) list() []configs.Override {
	return slices.SortedFunc(maps.Values(l.set), func(a, b configs.Override) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		ka, kb := a.Key(), b.Key()
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
}

// Pending returns how many local override changes the store has not
// accepted yet (they hold here and are retried).
func (l *Live) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// Overrides returns the overrides this replica knows, oldest first.
func (l *Live) Overrides() []configs.Override {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.list()
}

// Mitigate checks o against the live table, applies it here at once and
// stores it for the fleet; it returns the live states before and after.
// The override's Basis is set from the config; At and Replica default to
// now and this replica. If the store refuses it the override holds here
// and is retried by Run. On error nothing changes.
func (l *Live) Mitigate(o configs.Override) (before, after configs.State, stored configs.Override, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.p.Load()
	if err := cur.check(&o); err != nil {
		return configs.State{}, configs.State{}, configs.Override{}, err
	}
	o.Basis = l.base.basis(&o)
	if o.At.IsZero() {
		o.At = l.now()
	}
	o.At = o.At.UTC()
	if o.Replica == "" {
		o.Replica = l.replica
	}
	l.set[o.Key()] = o
	l.rebuild()
	next := l.p.Load()
	l.persist(pendingOp{o: o})
	return cur.State(), next.State(), o, nil
}

// Rollback sets the route's cohort to weight 0 as an automatic rollback
// (incidents.Rollbacker) and returns the states before and after. Use
// Mitigate to say who and why.
func (l *Live) Rollback(route, cohort string) (before, after configs.State, err error) {
	before, after, _, err = l.Mitigate(configs.Override{Route: route, What: configs.OverrideCohort, Cohort: cohort,
		Source: "rollback:auto", Actor: "cairn"})
	return before, after, err
}

// NoteIncident names the incident behind the override of the route's
// cohort (what is configs.OverrideCohort) or prompt, when it names none
// yet.
func (l *Live) NoteIncident(route, what, cohort, incident string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := (&configs.Override{Route: route, What: what, Cohort: cohort}).Key()
	o, ok := l.set[k]
	if !ok || o.Incident != "" {
		return
	}
	o.Incident = incident
	l.set[k] = o
	l.rebuild()
	l.persist(pendingOp{o: o})
}

// Restore clears the override of the route's cohort (what is
// configs.OverrideCohort) or prompt and returns it with the states
// before and after; ErrNoOverride when there is none.
func (l *Live) Restore(route, what, cohort string) (cleared configs.Override, before, after configs.State, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := (&configs.Override{Route: route, What: what, Cohort: cohort}).Key()
	o, ok := l.set[k]
	if !ok {
		return configs.Override{}, configs.State{}, configs.State{}, ErrNoOverride
	}
	cur := l.p.Load()
	delete(l.set, k)
	l.rebuild()
	l.persist(pendingOp{o: o, del: true})
	return o, cur.State(), l.p.Load().State(), nil
}

// Reload installs base, the table of a new config, keeping every override
// whose overridden part the new config leaves as it was, and clearing (for
// the fleet) those whose part it changed. It returns the states before and
// after and the overrides cleared.
func (l *Live) Reload(base *Table) (before, after configs.State, cleared []configs.Override) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.p.Load()
	old := l.base
	for _, o := range l.list() {
		if o.Basis == old.basis(&o) && o.Basis != base.basis(&o) {
			cleared = append(cleared, o)
			delete(l.set, o.Key())
		}
	}
	l.base = base
	l.rebuild()
	for _, o := range cleared {
		l.persist(pendingOp{o: o, del: true})
	}
	return cur.State(), l.p.Load().State(), cleared
}

// persist writes op to the store, or keeps it pending. Caller holds mu.
func (l *Live) persist(op pendingOp) {
	if l.store == nil {
		return
	}
	k := op.o.Key()
	delete(l.pending, k)
	if err := l.write(op); err != nil {
		l.pending[k] = op
		l.log.Warn("override store refused a change; it holds here and is retried", "override", k, "err", err)
	}
}

// write sends op to the store and advances the known version when no
// other change came between. Caller holds mu.
func (l *Live) write(op pendingOp) error {
	ctx, cancel := context.WithTimeout(context.Background(), overrideTimeout)
	defer cancel()
	var v int64
	var err error
	if op.del {
		v, err = l.store.Delete(ctx, op.o)
	} else {
		v, err = l.store.Put(ctx, op.o)
	}
	if err != nil {
		return err
	}
	l.lastWrite = time.Now()
	if v == l.version+1 {
		l.version = v
	}
	if l.cache != nil {
		_ = l.cache.Save(l.list(), l.version)
	}
	return nil
}

func (l *Live) flushPending(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(l.pending)) {
		if ctx.Err() != nil {
			return
		}
		if err := l.write(l.pending[k]); err != nil {
			return
		}
		delete(l.pending, k)
	}
}

// RevertPrompt serves p on the route as an automatic prompt revert
// (incidents' auto_revert_prompt) and returns the states before and after.
func (l *Live) RevertPrompt(route string, p configs.Prompt) (before, after configs.State, err error) {
	before, after, _, err = l.Mitigate(configs.Override{Route: route, What: configs.OverridePrompt, Prompt: &p,
		Source: "prompt:revert", Actor: "cairn"})
	return before, after, err
}
