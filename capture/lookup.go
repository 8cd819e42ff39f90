package capture

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Issue 12.12 and 12.14: request IDs live in three namespaces, resolved in
// order: the gateway's own IDs, then the providers' IDs, then the IDs
// clients send (x-client-request-id or x-request-id). A client cannot
// shadow another request's gateway or provider ID with its own header, and
// a client ID that several records carry lists them all.
//
// Client IDs are chosen by applications and may carry personal data (a
// phone number, a card number used as an order ID), so a record stores
// them masked and is indexed by a keyed hash of the raw ID instead (HMAC-
// SHA-256 with a per-deployment key kept in data_dir and, with Redis, in
// Redis). The raw ID never becomes a Redis key name, and lookup by the ID
// the application logged works even where its stored form is masked.

// ID kinds, as Match.Kind and the x-cairn-id-kind header say.
const (
	IDGateway  = "gateway"
	IDProvider = "provider"
	IDClient   = "client"
)

// maxClientMatches bounds the records one client ID lists.
const maxClientMatches = 100

// Match is the result of a lookup: which namespace the ID resolved in
// and the records carrying it, newest first (one for gateway and provider
// IDs, up to maxClientMatches for a client ID).
type Match struct {
	Kind    string
	Records []*Record
	// Scores are the eval scores of a single matched record, oldest
	// first (issue 16.1).
	Scores []Score
}

// Body is what the admin API and the CLI print for m: the record itself
// when there is one, otherwise a list object
// {"object":"list","id_kind":"client","data":[records, newest first]}.
func (m Match) Body() any {
	if len(m.Records) == 1 {
		if len(m.Scores) > 0 {
			return recordWithScores{m.Records[0], m.Scores}
		}
		return m.Records[0]
	}
	return struct {
		Object string    `json:"object"`
		IDKind string    `json:"id_kind"`
		Data   []*Record `json:"data"`
	}{"list", m.Kind, m.Records}
}

// lookupKeyFile holds the deployment's ID hashing key under data_dir
// (hex, mode 0600); redisLookupKey holds the same key shared by replicas.
const (
	lookupKeyFile  = "lookup.key"
	redisLookupKey = "cairn:capture:lookup-key"
)

// idHasher hashes client request IDs with the deployment's key. keys[0]
// hashes new records; every key is tried on lookup (a data_dir that met a
// different Redis key keeps both).
type idHasher struct {
	keys [][]byte
	// macs pools HMACs under keys[0] for hash (idhash_pool.go).
	macs sync.Pool
}

// hash returns the hex HMAC-SHA-256 (128 bits) of a raw client ID under
// key k, or "" for an empty ID.
func hashClientID(k []byte, id string) string {
	if id == "" || len(k) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func (h *idHasher) hash(id string) string {
	if h == nil || len(h.keys) == 0 {
		return ""
	}
	return h.hashPooled(id)
}

// all returns the hashes of id under every key.
func (h *idHasher) all(id string) []string {
	if h == nil {
		return nil
	}
	var out []string
	for _, k := range h.keys {
		if s := hashClientID(k, id); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// readKeyFile reads the key in dataDir, or nil when there is none.
func readKeyFile(dataDir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, lookupKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", lookupKeyFile, err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 16 {
		return nil, fmt.Errorf("read %s: not a hex key", lookupKeyFile)
	}
	return k, nil
}

// openIDHasher loads the deployment's key: Redis's when configured and
// reachable (set once, by the first replica, to the data_dir key or a new
// one), else data_dir's, else a new one. The key in use is written to
// data_dir when it has none, so offline lookups (`cairn requests show
// --data-dir`) hash IDs the same way.
//
// The Redis key lives as long as records are kept (ttl); the Redis sink
// renews it with every batch, so it only lapses with the data it hashes.
func openIDHasher(dataDir string, rdb redis.UniversalClient, ttl time.Duration) (*idHasher, error) {
	local, err := readKeyFile(dataDir)
	if err != nil {
		return nil, err
	}
	key := local
	if key == nil {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	if rdb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = rdb.SetNX(ctx, redisLookupKey, hex.EncodeToString(key), ttl).Err()
		shared, err := rdb.Get(ctx, redisLookupKey).Result()
		cancel()
		if k, derr := hex.DecodeString(shared); err == nil && derr == nil && len(k) >= 16 {
			key = k
		}
	}
	h := &idHasher{keys: [][]byte{key}}
	if local == nil {
		path := filepath.Join(dataDir, lookupKeyFile)
		if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", lookupKeyFile, err)
		}
	} else if !bytes.Equal(local, key) {
		h.keys = append(h.keys, local) // older records of this data_dir
	}
	return h, nil
}

// idKind returns the namespace in which r carries id ("" when it does
// not): its gateway ID, a provider ID (final or any attempt's), or a
// client ID whose keyed hash is one of hashes.
func idKind(r *Record, id string, hashes []string) string {
	switch {
	case id == "":
		return ""
	case r.GatewayRequestID == id:
		return IDGateway
	case r.ProviderRequestID == id:
		return IDProvider
	}
	for i := range r.Attempts {
		if r.Attempts[i].ProviderRequestID == id {
			return IDProvider
		}
	}
	if r.ClientRequestIDHash != "" && slices.Contains(hashes, r.ClientRequestIDHash) {
		return IDClient
	}
	// Records written before client IDs were hashed carry only the
	// stored form; a masked one ("[EMAIL]") is not an ID.
	if r.ClientRequestIDHash == "" && r.ClientRequestID == id && !strings.Contains(id, "[") {
		return IDClient
	}
	return ""
}

// fileMatches are what one pass over the capture files found.
type fileMatches struct {
	gateway, provider *Record
	client            []*Record // newest first
	// torn counts lines that could carry the ID but are not whole
	// records, and final lines without their newline (a crash mid-write).
	torn int
}

// scanFiles reads the capture files in dir, newest first, for records that
// carry id in any namespace. It stops at a gateway match.
func scanFiles(ctx context.Context, dir, id string, hashes []string) (fileMatches, error) {
	var fm fileMatches
	names, err := listFiles(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fm, nil
	}
	if err != nil {
		return fm, fmt.Errorf("list capture files: %w", err)
	}
	needles := [][]byte{jsonStringBody(id)}
	for _, h := range hashes {
		needles = append(needles, []byte(h))
	}
	for i := len(names) - 1; i >= 0 && fm.gateway == nil; i-- {
		if err := scanFile(ctx, names[i], id, hashes, needles, &fm); err != nil {
			return fm, err
		}
	}
	return fm, nil
}

// jsonStringBody returns s as it appears inside a JSON string.
func jsonStringBody(s string) []byte {
	b := appendJSONString(nil, s)
	return b[1 : len(b)-1]
}

func scanFile(ctx context.Context, path, id string, hashes []string, needles [][]byte, fm *fileMatches) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // pruned meanwhile
	}
	if err != nil {
		return fmt.Errorf("open capture file: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var client []*Record // this file's, oldest first
	var provider *Record
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return fmt.Errorf("search capture files: %w", ctx.Err())
		}
		line, err := readLine(br)
		if len(line) > 0 && containsAny(line, needles) {
			var r Record
			if json.Unmarshal(line, &r) != nil {
				fm.torn++
			} else {
				switch idKind(&r, id, hashes) {
				case IDGateway:
					fm.gateway = &r
					return nil
				case IDProvider:
					provider = &r
				case IDClient:
					client = append(client, &r)
				}
			}
		} else if err == io.EOF && len(line) > 0 {
			fm.torn++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read capture file: %w", err)
		}
	}
	if fm.provider == nil {
		fm.provider = provider
	}
	for i := len(client) - 1; i >= 0 && len(fm.client) < maxClientMatches; i-- {
		fm.client = append(fm.client, client[i])
	}
	return nil
}

func containsAny(b []byte, needles [][]byte) bool {
	for _, n := range needles {
		if len(n) > 0 && bytes.Contains(b, n) {
			return true
		}
	}
	return false
}

// mergeClient adds the records of more not already in list (by gateway
// ID) and sorts newest first, bounded by maxClientMatches.
func mergeClient(list []*Record, more ...[]*Record) []*Record {
	seen := map[string]bool{}
	for _, r := range list {
		seen[r.GatewayRequestID] = true
	}
	for _, m := range more {
		for _, r := range m {
			if !seen[r.GatewayRequestID] {
				seen[r.GatewayRequestID] = true
				list = append(list, r)
			}
		}
	}
	slices.SortStableFunc(list, func(a, b *Record) int {
		if c := b.ReceivedAt.Compare(a.ReceivedAt); c != 0 {
			return c
		}
		return strings.Compare(b.GatewayRequestID, a.GatewayRequestID)
	})
	if len(list) > maxClientMatches {
		list = list[:maxClientMatches]
	}
	return list
}

// FindAllInDir resolves id against the capture files under dataDir, as
// Writer.Find does, reading files only (the offline lookup behind `cairn
// requests show ID --data-dir DIR`). It is safe to call while a Writer
// appends to them. It returns ErrNotFound when no record carries id.
func FindAllInDir(dataDir, id string) (Match, error) {
	m, _, err := findAllInDir(dataDir, id)
	return m, err
}

// FindInDirTorn is FindInDir that also returns how many torn lines (a
// crash mid-write) it skipped among the lines that could carry id.
func FindInDirTorn(dataDir, id string) (*Record, int, error) {
	m, torn, err := findAllInDir(dataDir, id)
	if err != nil {
		return nil, torn, err
	}
	return m.Records[0], torn, nil
}

func findAllInDir(dataDir, id string) (Match, int, error) {
	if id == "" {
		return Match{}, 0, ErrNotFound
	}
	var hashes []string
	if k, err := readKeyFile(dataDir); err == nil && k != nil {
		hashes = (&idHasher{keys: [][]byte{k}}).all(id)
	}
	fm, err := scanFiles(context.Background(), filepath.Join(dataDir, captureSubdir), id, hashes)
	if err != nil {
		return Match{}, fm.torn, err
	}
	m, err := fm.match()
	if err == nil && len(m.Records) == 1 {
		m.Scores = ScoresInDir(dataDir, m.Records[0].GatewayRequestID)
	}
	return m, fm.torn, err
}

func (fm fileMatches) match() (Match, error) {
	switch {
	case fm.gateway != nil:
		return Match{Kind: IDGateway, Records: []*Record{fm.gateway}}, nil
	case fm.provider != nil:
		return Match{Kind: IDProvider, Records: []*Record{fm.provider}}, nil
	case len(fm.client) > 0:
		return Match{Kind: IDClient, Records: fm.client}, nil
	}
	return Match{}, ErrNotFound
}

// Find resolves id in order: as a gateway request ID, as a provider
// request ID, as a client request ID (by its keyed hash), looking in the
// records in memory, through the Redis index (when configured, so that
// other replicas' records are found) and in the capture files. A client
// ID lists every record carrying it, newest first. It returns ErrNotFound
// when none carries id. The records are shared: do not modify them.
func (w *Writer) Find(ctx context.Context, id string) (Match, error) {
	m, err := w.find(ctx, id)
	if err == nil && len(m.Records) == 1 {
		m.Scores = w.ScoresOf(ctx, m.Records[0].GatewayRequestID)
	}
	return m, err
}

func (w *Writer) find(ctx context.Context, id string) (Match, error) {
	if id == "" {
		return Match{}, ErrNotFound
	}
	hashes := w.ids.all(id)
	if r := w.mem.lookup(IDGateway, id); r != nil {
		return Match{Kind: IDGateway, Records: []*Record{r}}, nil
	}
	var errs []error
	var rm redisMatches
	if w.opt.Redis != nil {
		rctx, cancel := context.WithTimeout(ctx, redisLookupTimeout)
		var err error
		rm, err = redisFind(rctx, w.opt.Redis, id, hashes)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
		if rm.gateway != nil {
			return Match{Kind: IDGateway, Records: []*Record{rm.gateway}}, nil
		}
	}
	provider := w.mem.lookup(IDProvider, id)
	if provider == nil {
		provider = rm.provider
	}
	var fm fileMatches
	if provider == nil || looksLikeGatewayID(id) {
		var err error
		fm, err = scanFiles(ctx, filepath.Join(w.opt.DataDir, captureSubdir), id, hashes)
		w.metrics.tornLines.Add(uint64(fm.torn))
		if err != nil {
			errs = append(errs, err)
		}
	}
	if fm.gateway != nil {
		return Match{Kind: IDGateway, Records: []*Record{fm.gateway}}, nil
	}
	if provider == nil {
		provider = fm.provider
	}
	if provider != nil {
		return Match{Kind: IDProvider, Records: []*Record{provider}}, nil
	}
	var client []*Record
	for _, h := range hashes {
		client = mergeClient(client, w.mem.lookupClient(h))
	}
	client = mergeClient(client, rm.client, fm.client)
	if len(client) > 0 {
		return Match{Kind: IDClient, Records: client}, nil
	}
	if len(errs) > 0 {
		return Match{}, fmt.Errorf("lookup request %w (%w)", ErrNotFound, errors.Join(errs...))
	}
	return Match{}, ErrNotFound
}

// looksLikeGatewayID reports whether id has the shape of the gateway's own
// IDs (req_ and 26 base32 characters), which only the files may still
// hold when memory and Redis have moved on.
func looksLikeGatewayID(id string) bool {
	return len(id) == 30 && strings.HasPrefix(id, "req_")
}
