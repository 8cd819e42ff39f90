package incidents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const incidentsDir = "incidents"

func incidentPath(dataDir, id string) string {
	return filepath.Join(dataDir, incidentsDir, id+".json")
}

// writeIncident writes the incident atomically: a temporary file in the
// same directory, fsync, rename over the old file, fsync of the directory.
// A crash leaves either the old or the new file, never a torn one.
func writeIncident(dataDir string, inc *Incident) error {
	dir := filepath.Join(dataDir, incidentsDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create incidents dir: %w", err)
	}
	b, err := json.MarshalIndent(inc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode incident %s: %w", inc.ID, err)
	}
	f, err := os.CreateTemp(dir, "."+inc.ID+".*.tmp")
	if err != nil {
		return fmt.Errorf("write incident %s: %w", inc.ID, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write incident %s: %w", inc.ID, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o640); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write incident %s: %w", inc.ID, err)
	}
	if err := os.Rename(tmp, incidentPath(dataDir, inc.ID)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write incident %s: %w", inc.ID, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: the rename is already visible
		d.Close()
	}
	return nil
}

// removeStaleTemps deletes temporary files a crash left mid-write.
func removeStaleTemps(dir string, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".inc_") && strings.HasSuffix(n, ".tmp") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				log.Warn("remove stale incident temp file", "file", n, "err", err)
			}
		}
	}
}

// LoadIncident reads one incident from dataDir/incidents without a running
// gateway (the CLI uses it). An unknown or malformed ID yields ErrNotFound.
func LoadIncident(dataDir, id string) (*Incident, error) {
	if !validID("inc", id) {
		return nil, fmt.Errorf("load incident %q: %w", id, ErrNotFound)
	}
	b, err := os.ReadFile(incidentPath(dataDir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load incident %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load incident %s: %w", id, err)
	}
	var inc Incident
	if err := json.Unmarshal(b, &inc); err != nil {
		return nil, fmt.Errorf("load incident %s: %w", id, err)
	}
	return &inc, nil
}

// LoadDir reads every incident under dataDir/incidents, newest first. A
// missing directory is no incidents; an unreadable file is an error that
// names it.
func LoadDir(dataDir string) ([]*Incident, error) {
	entries, err := os.ReadDir(filepath.Join(dataDir, incidentsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read incidents dir: %w", err)
	}
	var out []*Incident
	var errs []error
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || e.IsDir() || !validID("inc", id) {
			continue
		}
		inc, err := LoadIncident(dataDir, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, inc)
	}
	sortNewestFirst(out)
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	return out, nil
}

func sortNewestFirst(incs []*Incident) {
	slices.SortFunc(incs, func(a, b *Incident) int {
		if c := b.OpenedAt.Compare(a.OpenedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
}

// redisStore keeps incidents in Redis for replicas to share. Every key
// carries the {cairn-incidents} hash tag, so the scripts and transactions
// below work on Redis Cluster too.
type redisStore struct {
	rdb redis.UniversalClient
	// ttl expires an incident's JSON; openTTL the route+cohort → ID key.
	ttl, openTTL time.Duration
	// openScript claims route+cohort for a new incident and stores it, or
	// returns the ID that already holds the claim. releaseScript drops the
	// claim if it still names the ID.
	openScript, releaseScript *redis.Script
}

const (
	redisPrefix      = "cairn:{cairn-incidents}:"
	redisIncidentTTL = 30 * 24 * time.Hour
	redisOpenTTL     = 24 * time.Hour
	redisIndexMax    = 10000
)

func newRedisStore(rdb redis.UniversalClient) *redisStore {
	return &redisStore{
		rdb: rdb, ttl: redisIncidentTTL, openTTL: redisOpenTTL,
		openScript: redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[7])
local old = redis.call('ZRANGE', KEYS[3], 0, -tonumber(ARGV[6]) - 1)
if #old > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -tonumber(ARGV[6]) - 1)
  redis.call('HDEL', KEYS[4], unpack(old))
end
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[4], ARGV[4])
return ARGV[1]
`),
		releaseScript: redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`),
	}
}

func (s *redisStore) incKey(id string) string { return redisPrefix + "inc:" + id }
func (s *redisStore) indexKey() string        { return redisPrefix + "index" }

// summaryKey is a hash of incident ID → storedSummary, so that listing
// does not fetch whole incidents.
func (s *redisStore) summaryKey() string { return redisPrefix + "summaries" }

type storedSummary struct {
	Summary
	Version int64 `json:"version"`
}

func summaryJSON(inc *Incident) []byte {
	b, err := json.Marshal(storedSummary{inc.Summary(), inc.Version})
	if err != nil {
		panic("BUG: summary does not encode: " + err.Error())
	}
	return b
}

// openKey is the claim of an open incident: one per route and cohort
// (cohort "" for the route's traffic as a whole), so that one failing
// canary yields one incident however many replicas and signals see it
// (issue 17). An incident declared by hand keeps its own claim.
func (s *redisStore) openKey(route, cohort, signal string) string {
	if signal == SignalDeclared {
		return redisPrefix + "open:" + route + ":" + signal
	}
	return redisPrefix + "open:" + route + ":cohort:" + cohort
}

func ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), redisTimeout)
}

// open stores inc under its route+cohort claim and returns the ID that
// holds the claim: inc.ID when this call won it.
func (s *redisStore) open(inc *Incident) (string, error) {
	b, err := json.Marshal(inc)
	if err != nil {
		return "", fmt.Errorf("encode incident: %w", err)
	}
	ctx, cancel := ctxTimeout()
	defer cancel()
	keys := []string{s.openKey(inc.Trigger.Route, inc.Trigger.Cohort, inc.Trigger.Signal), s.incKey(inc.ID), s.indexKey(), s.summaryKey()}
	id, err := s.openScript.Run(ctx, s.rdb, keys, inc.ID, b, int(s.openTTL/time.Second), int(s.ttl/time.Second),
		inc.OpenedAt.UnixMilli(), redisIndexMax, summaryJSON(inc)).Text()
	if err != nil {
		return "", fmt.Errorf("redis open incident: %w", err)
	}
	return id, nil
}

// get returns the stored incident, or nil when Redis has none.
func (s *redisStore) get(id string) (*Incident, error) {
	ctx, cancel := ctxTimeout()
	defer cancel()
	b, err := s.rdb.Get(ctx, s.incKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis get incident: %w", err)
	}
	var inc Incident
	if err := json.Unmarshal(b, &inc); err != nil {
		return nil, fmt.Errorf("redis get incident: %w", err)
	}
	return &inc, nil
}

// update applies fn to the freshest of local and the stored copy under
// WATCH and stores the result. fn returns false to abandon. It returns
// the stored incident (nil when abandoned).
func (s *redisStore) update(id string, local *Incident, fn func(*Incident) bool) (*Incident, error) {
	ctx, cancel := ctxTimeout()
	defer cancel()
	key := s.incKey(id)
	var result *Incident
	txf := func(tx *redis.Tx) error {
		result = nil
		base := local.clone()
		b, err := tx.Get(ctx, key).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			var remote Incident
			if json.Unmarshal(b, &remote) == nil && remote.Version >= base.Version {
				base = &remote
			}
		}
		if !fn(base) {
			return nil
		}
		out, err := json.Marshal(base)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, out, s.ttl)
			p.HSet(ctx, s.summaryKey(), id, summaryJSON(base))
			p.Expire(ctx, s.summaryKey(), s.ttl)
			p.ZAddNX(ctx, s.indexKey(), redis.Z{Score: float64(base.OpenedAt.UnixMilli()), Member: id})
			if base.Status != StatusResolved {
				p.Expire(ctx, s.openKey(base.Trigger.Route, base.Trigger.Cohort, base.Trigger.Signal), s.openTTL)
			}
			return nil
		})
		if err == nil {
			result = base
		}
		return err
	}
	for range 10 {
		err := s.rdb.Watch(ctx, txf, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redis update incident %s: %w", id, err)
		}
		return result, nil
	}
	return nil, fmt.Errorf("redis update incident %s: too many concurrent updates", id)
}

// release drops the route+cohort claim of a resolved incident.
func (s *redisStore) release(inc *Incident) error {
	ctx, cancel := ctxTimeout()
	defer cancel()
	err := s.releaseScript.Run(ctx, s.rdb, []string{s.openKey(inc.Trigger.Route, inc.Trigger.Cohort, inc.Trigger.Signal)}, inc.ID).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis release incident: %w", err)
	}
	return nil
}

// dropStaleClaim removes a claim whose incident JSON is gone, so the next
// open can take it.
func (s *redisStore) dropStaleClaim(route, cohort, signal, id string) error {
	ctx, cancel := ctxTimeout()
	defer cancel()
	err := s.releaseScript.Run(ctx, s.rdb, []string{s.openKey(route, cohort, signal)}, id).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis drop stale claim: %w", err)
	}
	return nil
}

// list returns the summaries of up to n incidents, newest first.
func (s *redisStore) list(n int64) ([]storedSummary, error) {
	ctx, cancel := ctxTimeout()
	defer cancel()
	ids, err := s.rdb.ZRevRange(ctx, s.indexKey(), 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("redis list incidents: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.summaryKey(), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis list incidents: %w", err)
	}
	var out []storedSummary
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var ss storedSummary
		if json.Unmarshal([]byte(str), &ss) == nil && ss.ID != "" {
			out = append(out, ss)
		}
	}
	return out, nil
}
