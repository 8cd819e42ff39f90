package incidents

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
)

// Audit sources.
const (
	SourceStartup        = "startup"
	SourceReload         = "reload"
	SourceSIGHUP         = "sighup"
	SourceRollbackAuto   = "rollback:auto"
	SourceRollbackManual = "rollback:manual"
	SourceIncident       = "incident" // an incident declared by hand
)

// AuditEntry is one change to the live state: a reload, a rollback, the
// state at startup. Changes is the structured diff from the state before to
// the state after.
type AuditEntry struct {
	ID       string           `json:"id"`
	At       time.Time        `json:"at"`
	Source   string           `json:"source"` // reload, sighup, rollback:auto, rollback:manual, startup
	Actor    string           `json:"actor,omitempty"`
	Reason   string           `json:"reason,omitempty"`
	Route    string           `json:"route,omitempty"`
	Revision string           `json:"config_revision"`
	Changes  []configs.Change `json:"changes"`
	// Replica is the replica that made the change, when known.
	Replica string `json:"replica,omitempty"`
}

const (
	auditFile = "audit.jsonl"
	// auditRedisKey is a capped list shared by replicas.
	auditRedisKey = "cairn:audit"
	// auditRedisMax caps the shared list (LTRIM after every push).
	auditRedisMax = 10000
	// auditRedisTTL expires the shared list when nothing appends for this
	// long.
	auditRedisTTL = 90 * 24 * time.Hour
	// auditMemoryMax bounds the entries kept in memory for List; the file
	// keeps everything.
	auditMemoryMax = 100000
	// auditSkew is how far out of order entries from several replicas may
	// be in the shared list.
	auditSkew = 5 * time.Minute
	// redisTimeout bounds every Redis call made off the hot path.
	redisTimeout = time.Second
)

// Audit is the append-only log of changes to the live state, persisted as
// JSONL in data_dir/audit.jsonl (one fsync per entry: changes are rare) and,
// when Redis is configured, also in a capped Redis list shared by replicas.
// All methods are safe for concurrent use; Close releases the file.
type Audit struct {
	path string
	rdb  redis.UniversalClient
	log  *slog.Logger

	mu      sync.Mutex
	f       *os.File
	size    int64        // bytes of whole lines in the file
	entries []AuditEntry // local, oldest first, at most auditMemoryMax
	seq     int64        // number of entries ever held; entries[0] has seq-len(entries)
	// unsaved holds encoded entries (with their newline) the disk refused,
	// oldest first; a retry goroutine writes them in order.
	unsaved  [][]byte
	retrying bool
	torn     bool // a failed write left bytes that could not be cut
	// needsNewline: the last entry on open was whole but for its newline.
	needsNewline bool

	// Entries not yet in the shared Redis list (Redis down), oldest
	// first, under rmu.
	rmu           sync.Mutex
	redisPending  [][]byte
	redisRetrying bool
	redisDropped  int
}

// auditRetryMax bounds the retry backoff of entries the disk refused.
const auditRetryMax = 2 * time.Second

// OpenAudit opens (creating if needed) dataDir/audit.jsonl and reads the
// entries already there. A torn last line (a crash mid-write) is skipped.
// rdb may be nil.
func OpenAudit(dataDir string, rdb redis.UniversalClient, logger *slog.Logger) (*Audit, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create audit dir: %w", err)
	}
	a := &Audit{path: filepath.Join(dataDir, auditFile), rdb: rdb, log: logger}
	f, err := os.OpenFile(a.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	whole, torn, err := a.load(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if a.needsNewline {
		if _, err := f.Write([]byte("\n")); err != nil {
			f.Close()
			return nil, fmt.Errorf("repair audit log: %w", err)
		}
	}
	if torn {
		// A crash mid-write left part of an entry: cut it, so that no torn
		// line stays in the log; failing that, start the next entry on a
		// line of its own (readers skip the torn one).
		if err := f.Truncate(whole); err != nil {
			if _, err := f.Write([]byte("\n")); err != nil {
				f.Close()
				return nil, fmt.Errorf("repair audit log: %w", err)
			}
		}
		a.log.Warn("audit log: removed a torn final line left by a crash", "path", a.path)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat audit log: %w", err)
	}
	a.f, a.size = f, st.Size()
	return a, nil
}

// load reads existing entries; it returns the size of the whole lines and
// whether the file ends in a torn line (no newline).
func (a *Audit) load(f *os.File) (whole int64, torn bool, err error) {
	r := bufio.NewReader(f)
	line := 0
	for {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 {
			line++
			torn = b[len(b)-1] != '\n'
			if t := bytes.TrimSpace(b); len(t) > 0 {
				var e AuditEntry
				if jerr := json.Unmarshal(t, &e); jerr != nil {
					if !torn {
						a.log.Warn("audit log: skipping unreadable line", "path", a.path, "line", line)
					}
				} else {
					a.keep(e)
					torn = false // whole but for its newline: kept, newline added
					if b[len(b)-1] != '\n' {
						a.needsNewline = true
					}
				}
			}
			if !torn {
				whole += int64(len(b))
			}
		}
		if errors.Is(err, io.EOF) {
			return whole, torn, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("read audit log: %w", err)
		}
	}
}

func (a *Audit) keep(e AuditEntry) {
	if len(a.entries) >= auditMemoryMax {
		n := copy(a.entries, a.entries[len(a.entries)/10:])
		clear(a.entries[n:])
		a.entries = a.entries[:n]
	}
	a.entries = append(a.entries, e)
	a.seq++
}

// Append records e, filling ID and At when empty, and returns the entry as
// stored. The local write is durable (fsync) before Append returns unless
// the disk refuses it: then the entry is kept in memory (List shows it,
// Unsaved counts it) and retried with backoff until it lands, in order,
// with no torn line left in the file. A Redis failure is logged, not
// returned, because the local log is authoritative.
func (a *Audit) Append(e AuditEntry) (AuditEntry, error) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = e.At.UTC()
	if e.ID == "" {
		e.ID = newID("aud", e.At)
	}
	if e.Changes == nil {
		e.Changes = []configs.Change{}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return AuditEntry{}, fmt.Errorf("encode audit entry: %w", err)
	}
	a.mu.Lock()
	if a.f == nil {
		a.mu.Unlock()
		return AuditEntry{}, errors.New("append audit entry: audit log is closed")
	}
	a.keep(e)
	a.unsaved = append(a.unsaved, append(b, '\n'))
	if err := a.writeUnsavedLocked(); err != nil && !a.retrying {
		// Held in memory (List shows it) and retried until it lands.
		a.retrying = true
		a.log.Error("audit: the disk refused the entry; kept in memory and retried", "id", e.ID, "err", err)
		go a.retry()
	}
	a.mu.Unlock()

	if a.rdb != nil {
		a.rmu.Lock()
		if len(a.redisPending) >= auditRedisBacklog {
			a.redisDropped++
			a.rmu.Unlock()
			a.log.Error("audit: redis backlog full; entry kept locally only", "id", e.ID)
			return e, nil
		}
		a.redisPending = append(a.redisPending, b)
		if !a.redisRetrying {
			if err := a.pushRedisLocked(); err != nil {
				a.redisRetrying = true
				a.log.Warn("audit: redis append failed; entry kept locally and retried", "id", e.ID, "err", err)
				go a.retryRedis()
			}
		}
		a.rmu.Unlock()
	}
	return e, nil
}

// auditRedisBacklog bounds the entries waiting for Redis; past it they
// stay in the local log only and are counted.
const auditRedisBacklog = 10000

// pushRedisLocked appends the pending entries to the shared list, in
// order, in one round trip.
func (a *Audit) pushRedisLocked() error {
	if len(a.redisPending) == 0 {
		return nil
	}
	vals := make([]any, len(a.redisPending))
	for i, b := range a.redisPending {
		vals[i] = b
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	_, err := a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, auditRedisKey, vals...)
		p.LTrim(ctx, auditRedisKey, -auditRedisMax, -1)
		p.Expire(ctx, auditRedisKey, auditRedisTTL)
		return nil
	})
	if err != nil {
		return err
	}
	a.redisPending = nil
	return nil
}

// retryRedis pushes pending entries with backoff until none is left or
// the log is closed, so that other replicas see every change once Redis
// is back.
func (a *Audit) retryRedis() {
	backoff := 100 * time.Millisecond
	for {
		time.Sleep(backoff)
		a.mu.Lock()
		closed := a.f == nil
		a.mu.Unlock()
		a.rmu.Lock()
		err := a.pushRedisLocked()
		if err == nil || closed {
			a.redisRetrying = false
			a.rmu.Unlock()
			if err == nil {
				a.log.Info("audit: held entries appended to redis")
			}
			return
		}
		a.rmu.Unlock()
		backoff = min(2*backoff, auditRetryMax)
	}
}

// writeUnsavedLocked writes the held entries in order, each synced. A
// failed write is cut back to the last whole line, so the file never keeps
// a torn entry.
func (a *Audit) writeUnsavedLocked() error {
	for len(a.unsaved) > 0 {
		line := a.unsaved[0]
		if a.torn {
			if _, err := a.f.Write([]byte("\n")); err != nil {
				return fmt.Errorf("append audit entry: %w", err)
			}
			a.size++
			a.torn = false
		}
		if n, err := a.f.Write(line); err != nil {
			if n > 0 && a.f.Truncate(a.size) != nil {
				a.torn = true
				a.size += int64(n)
			}
			return fmt.Errorf("append audit entry: %w", err)
		}
		if err := a.f.Sync(); err != nil {
			// The bytes are in the file; only durability is in doubt.
			a.log.Warn("audit: sync failed", "err", err)
		}
		a.size += int64(len(line))
		a.unsaved[0] = nil
		a.unsaved = a.unsaved[1:]
	}
	a.unsaved = nil
	return nil
}

// retry writes held entries with backoff until none is left or the log
// is closed.
func (a *Audit) retry() {
	backoff := 100 * time.Millisecond
	for {
		time.Sleep(backoff)
		a.mu.Lock()
		if a.f == nil {
			a.retrying = false
			a.mu.Unlock()
			return
		}
		err := a.writeUnsavedLocked()
		if err == nil {
			a.retrying = false
			a.mu.Unlock()
			a.log.Info("audit: held entries written")
			return
		}
		a.mu.Unlock()
		backoff = min(2*backoff, auditRetryMax)
	}
}

// Unsaved returns how many entries are held in memory because the disk
// refused them or Redis was unreachable.
func (a *Audit) Unsaved() int {
	a.mu.Lock()
	n := len(a.unsaved)
	a.mu.Unlock()
	a.rmu.Lock()
	n += len(a.redisPending)
	a.rmu.Unlock()
	return n
}

// List returns the entries at or after since, oldest first: this replica's
// entries merged with the shared Redis list when configured (deduplicated
// by ID). When Redis does not answer within a second, the local entries
// are returned.
func (a *Audit) List(since time.Time) []AuditEntry {
	a.mu.Lock()
	i, _ := slices.BinarySearchFunc(a.entries, since, func(e AuditEntry, t time.Time) int { return e.At.Compare(t) })
	// Entries are appended in time order on one replica, but clocks can
	// step back: filter rather than trust the search alone.
	out := make([]AuditEntry, 0, len(a.entries)-i)
	for _, e := range a.entries[max(0, i-16):] {
		if !e.At.Before(since) {
			out = append(out, e)
		}
	}
	a.mu.Unlock()

	if a.rdb != nil {
		remote, err := a.listRedis(since)
		if err != nil {
			a.log.Warn("audit: redis list failed; showing local entries", "err", err)
		}
		seen := make(map[string]bool, len(out))
		for _, e := range out {
			seen[e.ID] = true
		}
		for _, e := range remote {
			if !seen[e.ID] {
				seen[e.ID] = true
				out = append(out, e)
			}
		}
	}
	slices.SortStableFunc(out, func(x, y AuditEntry) int {
		if c := x.At.Compare(y.At); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// listRedis reads the shared list from its newest end, a page at a time,
// until it reaches entries older than since (entries arrive roughly in
// time order; a few minutes of clock skew between replicas is tolerated).
func (a *Audit) listRedis(since time.Time) ([]AuditEntry, error) {
	const page = 200
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	var out []AuditEntry
	for end := int64(-1); ; end -= page {
		raw, err := a.rdb.LRange(ctx, auditRedisKey, end-page+1, end).Result()
		if err != nil {
			return out, err
		}
		older := false
		for _, s := range raw {
			var e AuditEntry
			if json.Unmarshal([]byte(s), &e) != nil {
				continue
			}
			if e.At.Before(since) {
				older = older || e.At.Before(since.Add(-auditSkew))
				continue
			}
			out = append(out, e)
		}
		if older || len(raw) < page {
			return out, nil
		}
	}
}

// after returns this replica's entries appended after the seq-th entry
// and the new seq, for the manager to follow changes as they happen.
func (a *Audit) after(seq int64) ([]AuditEntry, int64) {
	if a == nil {
		return nil, seq
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	first := a.seq - int64(len(a.entries))
	if seq >= a.seq {
		return nil, a.seq
	}
	from := max(seq, first) - first
	return slices.Clone(a.entries[from:]), a.seq
}

// Close closes the log file. Append fails afterwards; List keeps working.
func (a *Audit) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	var lost error
	if a.writeUnsavedLocked() != nil {
		lost = fmt.Errorf("close audit log: %d entries not written: the disk refused them", len(a.unsaved))
	}
	err := a.f.Close()
	a.f = nil
	if err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return lost
}
