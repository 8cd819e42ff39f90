package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"
)

// Issue 16.1: an eval score is evidence like a record. It is joined to its
// request (any of the three IDs resolves it, as for lookup) and stored as
// its own record type beside the capture records: lines with "type":
// "score" in data_dir/capture/scores/scores-YYYY-MM-DD.jsonl (the request
// files stay one request record per line, so their accounting and every
// reader of capture/*.jsonl are untouched), entries with field "s" in the capture Redis stream, and a
// per-request list in Redis and in memory so that a lookup lists the
// request's scores.

// RecordTypeScore is Score.Type.
const RecordTypeScore = "score"

const (
	scoreFilePrefix = "scores-"
	scoreSubdir     = "scores"
	// redisScorePrefix + gateway request ID is a list of the request's
	// scores (JSON), with the capture retention as TTL.
	redisScorePrefix = "cairn:capture:scores:"
	// maxScoresPerRequest bounds the scores kept (in memory and Redis) and
	// listed for one request.
	maxScoresPerRequest = 100
	// memoryScores bounds the scores kept in memory for lookup.
	memoryScores = 200_000
	// settleWait is how long Resolve waits for records still on their way
	// to memory (the handler's last step, the writer's queue); settleStep
	// how often it looks again.
	settleWait = 300 * time.Millisecond
	settleStep = 10 * time.Millisecond
)

// Score is one eval score joined to its request's route, cohort, target,
// prompt version and release. Name and Source are validated by the caller
// (configs.ValidScoreName): they carry no free text.
type Score struct {
	Type string `json:"type"` // "score"
	// RequestID is the gateway request ID of the scored request, whichever
	// of its IDs the score named.
	RequestID string    `json:"request_id"`
	Name      string    `json:"name"`
	Value     float64   `json:"value"`
	Source    string    `json:"source,omitempty"`
	At        time.Time `json:"at"`          // when it was scored (the caller's "at", else received_at)
	Received  time.Time `json:"received_at"` // when the gateway took it
	// RequestAt is the request's ReceivedAt.
	RequestAt     time.Time `json:"request_at"`
	Route         string    `json:"route,omitempty"`
	Cohort        string    `json:"cohort,omitempty"`
	Target        string    `json:"target,omitempty"`
	PromptVersion string    `json:"prompt_version,omitempty"`
	Release       string    `json:"release,omitempty"`
	// Late is set for a score of a request older than detection.lookback:
	// stored and listed, not fed to detection.
	Late bool `json:"late,omitempty"`
}

// JoinScore returns a score of r with r's route, cohort, target, prompt
// version and release.
func JoinScore(r *Record, name string, value float64, source string, at, now time.Time) Score {
	cohort := r.Cohort
	target := r.Target
	if target == "" && r.Provider != "" {
		target = r.Provider + "/" + r.Model
	}
	if at.IsZero() {
		at = now
	}
	return Score{Type: RecordTypeScore, RequestID: r.GatewayRequestID, Name: name, Value: value, Source: source,
		At: at.UTC(), Received: now.UTC(), RequestAt: r.ReceivedAt.UTC(), Route: r.Route, Cohort: cohort,
		Target: target, PromptVersion: r.PromptVersion, Release: r.Release}
}

// scoreStore keeps scores: appended to the day's score file and the
// Redis stream, and indexed in memory by gateway request ID. Its methods
// are safe for concurrent use.
type scoreStore struct {
	dir       string
	retention int
	redis     redis.UniversalClient
	maxLen    int64
	ttl       time.Duration
	now       func() time.Time

	mu    sync.Mutex // serializes file appends and the memory index
	f     *os.File
	day   string
	byReq map[string][]Score
	order []string // gateway IDs in the order their first score came, for eviction
	n     int      // scores in byReq
	buf   []byte
}

func newScoreStore(dataDir string, retentionDays int, rdb redis.UniversalClient, maxLen int64, now func() time.Time) *scoreStore {
	return &scoreStore{dir: filepath.Join(dataDir, captureSubdir, scoreSubdir), retention: retentionDays, redis: rdb, maxLen: maxLen,
		ttl: time.Duration(retentionDays) * 24 * time.Hour, now: now, byReq: map[string][]Score{}}
}

// ErrScoresNotStored is returned by AddScores when the score file refused
// the batch: nothing of it was accepted.
var ErrScoresNotStored = errors.New("scores not stored")

// AddScores stores scores that Resolve joined (JoinScore). It returns
// once they are in the score file (written, not synced) and the memory
// index, and has tried the Redis stream (a Redis failure is counted in
// cairn_scores_lost_total{sink="redis"}; the file keeps them). An error
// means none was stored (counted in cairn_scores_lost_total{sink="file"}).
func (w *Writer) AddScores(ctx context.Context, scores []Score) error {
	if len(scores) == 0 {
		return nil
	}
	s := w.scores
	if err := s.append(scores); err != nil {
		w.metrics.scores.lostFile.Add(uint64(len(scores)))
		return fmt.Errorf("%w: %w", ErrScoresNotStored, err)
	}
	w.metrics.observeScores(scores)
	if s.redis != nil {
		if err := s.pushRedis(ctx, scores); err != nil {
			w.metrics.scores.lostRedis.Add(uint64(len(scores)))
			w.sinkError(sinkRedis, err)
		}
	}
	return nil
}

func (s *scoreStore) append(scores []Score) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = s.buf[:0]
	for i := range scores {
		s.buf = appendScore(s.buf, &scores[i])
	}
	day := s.now().UTC().Format(dayLayout)
	if s.f == nil || day != s.day {
		if err := os.MkdirAll(s.dir, 0o750); err != nil {
			return fmt.Errorf("create score dir: %w", err)
		}
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
		f, err := os.OpenFile(filepath.Join(s.dir, scoreFilePrefix+day+fileSuffix), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("open score file: %w", err)
		}
		s.f, s.day = f, day
		s.prune()
	}
	if _, err := s.f.Write(s.buf); err != nil {
		// A short write leaves a torn line: readers skip it, and the next
		// append starts on a fresh line.
		s.f.Write([]byte("\n"))
		return fmt.Errorf("write score file: %w", err)
	}
	if cap(s.buf) > 4<<20 {
		s.buf = nil
	}
	for i := range scores {
		s.index(scores[i])
	}
	return nil
}

// index adds sc to the memory index, evicting the oldest requests' scores
// past memoryScores.
func (s *scoreStore) index(sc Score) {
	list, ok := s.byReq[sc.RequestID]
	if !ok {
		s.order = append(s.order, sc.RequestID)
	}
	if len(list) >= maxScoresPerRequest {
		list = list[1:]
		s.n--
	}
	s.byReq[sc.RequestID] = append(list, sc)
	s.n++
	for s.n > memoryScores && len(s.order) > 0 {
		old := s.order[0]
		s.order = s.order[1:]
		s.n -= len(s.byReq[old])
		delete(s.byReq, old)
	}
}

// prune deletes score files past retention. Called with mu held.
func (s *scoreStore) prune() {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	cutoff := s.now().UTC().AddDate(0, 0, -s.retention).Format(dayLayout)
	for _, e := range ents {
		n := e.Name()
		if day, ok := strings.CutPrefix(n, scoreFilePrefix); ok && strings.HasSuffix(day, fileSuffix) &&
			strings.TrimSuffix(day, fileSuffix) < cutoff {
			os.Remove(filepath.Join(s.dir, n))
		}
	}
}

func (s *scoreStore) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

func (s *scoreStore) pushRedis(ctx context.Context, scores []Score) error {
	ctx, cancel := context.WithTimeout(ctx, redisCallTimout)
	defer cancel()
	_, err := s.redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		var line []byte
		for i := range scores {
			line = appendScore(line[:0], &scores[i])
			v := string(line[:len(line)-1])
			p.XAdd(ctx, &redis.XAddArgs{Stream: RedisStream, MaxLen: s.maxLen, Approx: true, Values: []any{"s", v}})
			k := redisScorePrefix + scores[i].RequestID
			p.RPush(ctx, k, v)
			p.LTrim(ctx, k, -maxScoresPerRequest, -1)
			p.Expire(ctx, k, s.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis scores: %w", err)
	}
	return nil
}

// appendScore appends sc's JSON line (with '\n'). Values are finite (the
// caller refuses others); a non-finite one is written as 0 rather than
// breaking the line.
func appendScore(dst []byte, sc *Score) []byte {
	c := *sc
	if math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
		c.Value = 0
	}
	b, _ := json.Marshal(&c)
	dst = append(dst, b...)
	return append(dst, '\n')
}

// ScoresOf returns the scores stored for the request with gateway ID id,
// oldest first: from memory, else Redis, else the score files.
func (w *Writer) ScoresOf(ctx context.Context, id string) []Score {
	s := w.scores
	s.mu.Lock()
	list := slices.Clone(s.byReq[id])
	s.mu.Unlock()
	if len(list) > 0 {
		return list
	}
	if s.redis != nil {
		rctx, cancel := context.WithTimeout(ctx, redisLookupTimeout)
		vals, err := s.redis.LRange(rctx, redisScorePrefix+id, 0, -1).Result()
		cancel()
		if err == nil && len(vals) > 0 {
			for _, v := range vals {
				var sc Score
				if json.Unmarshal([]byte(v), &sc) == nil {
					list = append(list, sc)
				}
			}
			return list
		}
	}
	return ScoresInDir(w.opt.DataDir, id)
}

// ScoresInDir reads the scores of the request with gateway ID id from the
// score files under dataDir, oldest first (at most maxScoresPerRequest,
// the newest). Torn lines are skipped.
func ScoresInDir(dataDir, id string) []Score {
	if id == "" {
		return nil
	}
	dir := filepath.Join(dataDir, captureSubdir, scoreSubdir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), scoreFilePrefix) && strings.HasSuffix(e.Name(), fileSuffix) {
			names = append(names, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(names)
	needle := []byte(`"request_id":` + string(appendJSONString(nil, id)))
	var out []Score
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			continue
		}
		br := bufio.NewReaderSize(f, 1<<20)
		for {
			line, err := readLine(br)
			if len(line) > 0 && bytes.Contains(line, needle) {
				var sc Score
				if json.Unmarshal(line, &sc) == nil && sc.RequestID == id {
					out = append(out, sc)
				}
			}
			if err != nil {
				break
			}
		}
		f.Close()
	}
	if len(out) > maxScoresPerRequest {
		out = out[len(out)-maxScoresPerRequest:]
	}
	return out
}

// Resolve finds the record of each ID (gateway, provider or client ID, as
// Find; a client ID several records carry resolves to the newest), or nil
// when none carries it. It looks in memory first, then through the Redis
// index, then in one pass over the capture files for all IDs still
// unknown; ctx bounds the slow part (IDs it did not reach stay nil and
// err says why). The records are shared: do not modify them.
func (w *Writer) Resolve(ctx context.Context, ids []string) (recs []*Record, err error) {
	recs = make([]*Record, len(ids))
	var left []int
	for i, id := range ids {
		if recs[i] = w.resolveMemory(id); recs[i] == nil && id != "" {
			left = append(left, i)
		}
	}
	// A scorer may post as soon as its client has the answer, before the
	// request's record has left the handler or the writer's queue: give
	// the writer a moment to catch up before looking further.
	for wait := time.Now().Add(settleWait); len(left) > 0 && time.Now().Before(wait) && ctx.Err() == nil; {
		time.Sleep(settleStep)
		still := left[:0]
		for _, i := range left {
			if recs[i] = w.resolveMemory(ids[i]); recs[i] == nil {
				still = append(still, i)
			}
		}
		left = still
	}
	if len(left) == 0 {
		return recs, nil
	}
	if w.opt.Redis != nil {
		var still []int
		for _, i := range left {
			if ctx.Err() != nil {
				still = append(still, i)
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, redisLookupTimeout)
			rm, rerr := redisFind(rctx, w.opt.Redis, ids[i], w.ids.all(ids[i]))
			cancel()
			switch {
			case rerr != nil:
				err = rerr
			case rm.gateway != nil:
				recs[i] = rm.gateway
			case rm.provider != nil:
				recs[i] = rm.provider
			case len(rm.client) > 0:
				recs[i] = rm.client[0]
			}
			if recs[i] == nil {
				still = append(still, i)
			}
		}
		left = still
	}
	if len(left) == 0 {
		return recs, err
	}
	if ferr := w.resolveFiles(ctx, ids, left, recs); ferr != nil {
		err = ferr
	}
	return recs, err
}

func (w *Writer) resolveMemory(id string) *Record {
	if id == "" {
		return nil
	}
	if r := w.mem.lookup(IDGateway, id); r != nil {
		return r
	}
	if r := w.mem.lookup(IDProvider, id); r != nil {
		return r
	}
	for _, h := range w.ids.all(id) {
		if list := w.mem.lookupClient(h); len(list) > 0 {
			return list[0]
		}
	}
	return nil
}

// resolveFiles reads the capture files once, newest first, for the IDs at
// positions left, by gateway, provider and client ID (a gateway match
// wins over the others, as in Find).
func (w *Writer) resolveFiles(ctx context.Context, ids []string, left []int, recs []*Record) error {
	names, err := listFiles(filepath.Join(w.opt.DataDir, captureSubdir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list capture files: %w", err)
	}
	want := map[string][]int{}   // raw ID → positions
	byHash := map[string][]int{} // client ID hash → positions
	for _, i := range left {
		want[ids[i]] = append(want[ids[i]], i)
		for _, h := range w.ids.all(ids[i]) {
			byHash[h] = append(byHash[h], i)
		}
	}
	// rank: 0 gateway, 1 provider, 2 client; a lower rank wins, then the
	// newest line (files newest first, lines oldest first within a file).
	rank := make(map[int]int, len(left))
	fileOf := make(map[int]int, len(left))
	open := len(left)
	take := func(i, rk, k int, line []byte) {
		if old, ok := rank[i]; ok && (old < rk || old == rk && fileOf[i] != k) {
			return
		}
		var r Record
		if json.Unmarshal(line, &r) != nil {
			return
		}
		if _, ok := rank[i]; !ok {
			open--
		}
		recs[i], rank[i], fileOf[i] = &r, rk, k
	}
	for k := len(names) - 1; k >= 0 && open > 0; k-- {
		f, err := os.Open(names[k])
		if err != nil {
			continue
		}
		br := bufio.NewReaderSize(f, 1<<20)
		for n := 0; ; n++ {
			if n%4096 == 0 && ctx.Err() != nil {
				f.Close()
				return fmt.Errorf("resolve scores' requests: %w", ctx.Err())
			}
			line, rerr := readLine(br)
			if len(line) > 0 {
				res := gjson.GetManyBytes(line, "gateway_request_id", "provider_request_id", "client_request_id_hash", "attempts.#.provider_request_id")
				for _, i := range want[res[0].Str] {
					take(i, 0, k, line)
				}
				for _, i := range want[res[1].Str] {
					take(i, 1, k, line)
				}
				for _, a := range res[3].Array() {
					if a.Str != res[1].Str {
						for _, i := range want[a.Str] {
							take(i, 1, k, line)
						}
					}
				}
				if h := res[2].Str; h != "" {
					for _, i := range byHash[h] {
						take(i, 2, k, line)
					}
				}
			}
			if rerr != nil {
				break
			}
		}
		f.Close()
	}
	return nil
}

// recordWithScores encodes as the record with a "scores" list.
type recordWithScores struct {
	r      *Record
	scores []Score
}

func (x recordWithScores) MarshalJSON() ([]byte, error) {
	b, _ := x.r.MarshalJSON()
	sc, err := json.Marshal(x.scores)
	if err != nil {
		return nil, err
	}
	b = append(b[:len(b)-1], `,"scores":`...)
	b = append(b, sc...)
	return append(b, '}'), nil
}
