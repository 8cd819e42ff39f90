package routing

import (
	"sync/atomic"

	"github.com/cairnhq/cairn/configs"
)

// Live holds the current Table. Requests Load it once and use that
// snapshot to the end; reloads Store a new one and rollbacks replace it
// with a copy that has one cohort at weight 0. It is safe for concurrent
// use and lives as long as the gateway.
type Live struct {
	p   atomic.Pointer[Table]
	gen atomic.Uint64 // changes of p, counted after each is visible
}

// NewLive returns a Live holding t.
func NewLive(t *Table) *Live {
	l := &Live{}
	l.p.Store(t)
	return l
}

// Load returns the current table.
func (l *Live) Load() *Table { return l.p.Load() }

// Store makes t the current table and returns the one it replaces.
func (l *Live) Store(t *Table) (prev *Table) {
	prev = l.p.Swap(t)
	l.gen.Add(1)
	return prev
}

// Generation counts the changes of the current table (stores and
// rollbacks). It is incremented after the new table is visible, so a
// reader that reads Generation and then Load never pairs a generation
// with a table older than it: one that sees the same generation twice may
// skip rebuilding what it derived from the table.
func (l *Live) Generation() uint64 { return l.gen.Load() }

// Rollback atomically replaces the current table with one in which the
// route's cohort has weight 0, and returns the live states before and
// after. A concurrent Store or Rollback is never lost: the change is
// retried on the newest table. On error nothing changes and the states are
// zero.
func (l *Live) Rollback(route, cohort string) (before, after configs.State, err error) {
	for {
		cur := l.p.Load()
		next, err := cur.WithoutCohort(route, cohort)
		if err != nil {
			return configs.State{}, configs.State{}, err
		}
		if l.p.CompareAndSwap(cur, next) {
			l.gen.Add(1)
			return cur.State(), next.State(), nil
		}
	}
}
