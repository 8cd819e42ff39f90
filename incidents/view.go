package incidents

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Issue 18: the console loads an incident three times per page (its JSON,
// the postmortem, the chart), and a resolved incident with thousands of
// samples is megabytes of JSON to decode each time. View serves readers
// that do not modify the incident from a small cache of decoded files,
// keyed by the file's size and modification time.

// viewCacheSize bounds the decoded incidents kept.
const viewCacheSize = 8

type viewEntry struct {
	size  int64
	mtime time.Time
	inc   *Incident
	js    []byte // inc as the admin API serves it, once asked for
}

// viewCache is the Manager's cache of decoded incident files; the zero
// value is ready to use. It is safe for concurrent use.
type viewCache struct {
	mu sync.Mutex
	m  map[string]viewEntry
	// loading holds a channel per ID being decoded, closed when done: a
	// page's parallel calls decode a changed file once, not once each.
	loading map[string]chan struct{}
}

// load returns the incident file of id, decoded once per version of the
// file. The incident is shared: callers must not modify it.
func (c *viewCache) load(dataDir, id string) (*Incident, error) {
	if !validID("inc", id) {
		return nil, fmt.Errorf("load incident %q: %w", id, ErrNotFound)
	}
	fi, err := os.Stat(incidentPath(dataDir, id))
	if err != nil {
		return LoadIncident(dataDir, id)
	}
	for {
		c.mu.Lock()
		e, ok := c.m[id]
		if ok && e.size == fi.Size() && e.mtime.Equal(fi.ModTime()) {
			c.mu.Unlock()
			return e.inc, nil
		}
		wait, busy := c.loading[id]
		if !busy {
			if c.loading == nil {
				c.loading = map[string]chan struct{}{}
			}
			c.loading[id] = make(chan struct{})
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		<-wait // another caller is decoding it; then look again
	}
	inc, err := LoadIncident(dataDir, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.loading[id])
	delete(c.loading, id)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]viewEntry{}
	}
	for k := range c.m {
		if len(c.m) < viewCacheSize {
			break
		}
		delete(c.m, k)
	}
	c.m[id] = viewEntry{size: fi.Size(), mtime: fi.ModTime(), inc: inc}
	return inc, nil
}

// View returns incident id like Get, for a reader that does not modify
// it: an incident this replica follows is copied as Get copies it, one
// only on disk (resolved, or another replica's) is decoded once per
// version of its file and shared between callers. Unknown IDs yield
// ErrNotFound.
func (m *Manager) View(id string) (*Incident, error) {
	if !validID("inc", id) {
		return nil, fmt.Errorf("get incident %q: %w", id, ErrNotFound)
	}
	m.mu.Lock()
	active := m.active[id] != nil
	m.mu.Unlock()
	if active {
		return m.Get(id)
	}
	inc, err := m.views.load(m.o.DataDir, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if m.rs != nil {
		remote, rerr := m.rs.get(id)
		if rerr != nil {
			m.log.Warn("redis unavailable; serving the local copy", "incident", id, "err", rerr)
		}
		if remote != nil && (inc == nil || remote.Version > inc.Version) {
			inc = remote
		}
	}
	if inc == nil {
		return nil, fmt.Errorf("get incident %s: %w", id, ErrNotFound)
	}
	return inc, nil
}

// ViewJSON returns View's incident as the admin API serves it: indented
// JSON and a newline. A shared incident decoded from disk is encoded once.
func (m *Manager) ViewJSON(id string) ([]byte, error) {
	inc, err := m.View(id)
	if err != nil {
		return nil, err
	}
	c := &m.views
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	shared := ok && e.inc == inc
	if shared && e.js != nil {
		return e.js, nil
	}
	b, err := json.MarshalIndent(inc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode incident %s: %w", id, err)
	}
	b = append(b, '\n')
	if shared {
		c.mu.Lock()
		if cur, ok := c.m[id]; ok && cur.inc == inc {
			cur.js = b
			c.m[id] = cur
		}
		c.mu.Unlock()
	}
	return b, nil
}
