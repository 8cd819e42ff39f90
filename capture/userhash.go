package capture

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// UserKeyFile is the per-deployment key of user hashes, under data_dir.
const UserKeyFile = "user-hash.key"

// userKeyRedis holds the key shared by the replicas of one deployment.
const userKeyRedis = "cairn:user_hash_key"

// userHashPrefix marks a keyed user hash in a record.
const userHashPrefix = "uh_"

// UserHasher turns the OpenAI `user` / `safety_identifier` of a request into
// a keyed hash (HMAC-SHA256 under a per-deployment key): the same end user
// gets the same hash on every replica and across restarts, so an incident
// can count the users it affected, while the raw value is never recorded
// and cannot be recovered by hashing guesses without the key. It is safe
// for concurrent use.
type UserHasher struct {
	pool sync.Pool // of *userHashState
}

// userHashState is an HMAC under the key with its scratch buffers.
type userHashState struct {
	mac     hash.Hash
	in, sum []byte
}

// NewUserHasher returns a hasher under key (at least 16 bytes).
func NewUserHasher(key []byte) (*UserHasher, error) {
	if len(key) < 16 {
		return nil, errors.New("user hash key: shorter than 16 bytes")
	}
	k := bytes.Clone(key)
	h := &UserHasher{}
	h.pool.New = func() any {
		return &userHashState{mac: hmac.New(sha256.New, k), sum: make([]byte, 0, sha256.Size)}
	}
	return h, nil
}

// Sum returns "uh_" and the first 16 bytes of HMAC-SHA256(key, user) in
// hex, or "" for an empty user (or a nil hasher).
func (h *UserHasher) Sum(user string) string {
	if h == nil || user == "" {
		return ""
	}
	st := h.pool.Get().(*userHashState)
	st.mac.Reset()
	st.in = append(st.in[:0], user...)
	st.mac.Write(st.in)
	st.sum = st.mac.Sum(st.sum[:0])
	var out [len(userHashPrefix) + 32]byte
	copy(out[:], userHashPrefix)
	hex.Encode(out[len(userHashPrefix):], st.sum[:16])
	if cap(st.in) <= 4096 { // a huge user value is not kept in the pool
		h.pool.Put(st)
	}
	return string(out[:])
}

// OpenUserHasher loads the deployment's user hash key. With Redis the key
// is shared by every replica (the first replica's key wins) and cached in
// dataDir, so a restart while Redis is down keeps hashing the same way;
// without Redis, or when Redis cannot be reached, the key in dataDir is
// used, created on first start (mode 0600).
func OpenUserHasher(dataDir string, rdb redis.UniversalClient, log *slog.Logger) (*UserHasher, error) {
	path := filepath.Join(dataDir, UserKeyFile)
	local, err := readUserKey(path)
	if err != nil {
		return nil, err
	}
	if rdb != nil {
		shared, err := sharedUserKey(rdb, local)
		switch {
		case err != nil:
			if log != nil {
				log.Warn("redis unreachable; user hashes use this replica's key until it is", "err", err)
			}
		case !bytes.Equal(shared, local):
			if err := writeUserKey(path, shared, true); err != nil {
				return nil, err
			}
			local = shared
		}
	}
	if local == nil {
		local = make([]byte, 32)
		_, _ = rand.Read(local) // crypto/rand.Read never fails (Go 1.24+)
		if err := writeUserKey(path, local, false); err != nil {
			return nil, err
		}
		// Another process may have created it first: use what is on disk.
		if local, err = readUserKey(path); err != nil {
			return nil, err
		}
	}
	return NewUserHasher(local)
}

// sharedUserKey stores proposal (or a new key) in Redis unless a key is
// there already, and returns the key Redis holds.
func sharedUserKey(rdb redis.UniversalClient, proposal []byte) ([]byte, error) {
	if proposal == nil {
		proposal = make([]byte, 32)
		_, _ = rand.Read(proposal)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.SetNX(ctx, userKeyRedis, hex.EncodeToString(proposal), 0).Err(); err != nil {
		return nil, fmt.Errorf("store user hash key: %w", err)
	}
	s, err := rdb.Get(ctx, userKeyRedis).Result()
	if err != nil {
		return nil, fmt.Errorf("read user hash key: %w", err)
	}
	key, err := hex.DecodeString(s)
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("redis key %s is not a hex key of at least 16 bytes", userKeyRedis)
	}
	return key, nil
}

// UserHasherFromFile returns the hasher of a key file's contents (hex).
func UserHasherFromFile(b []byte) (*UserHasher, error) {
	key, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(key) < 16 {
		return nil, errors.New("user hash key: not a hex key of at least 16 bytes")
	}
	return NewUserHasher(key)
}

// readUserKey returns the key in path, or nil when the file does not exist.
func readUserKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read user hash key: %w", err)
	}
	key, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("%s is not a hex key of at least 16 bytes; delete it to create a new one (user hashes will change)", path)
	}
	return key, nil
}

// writeUserKey writes key to path atomically with mode 0600. Without
// replace, an existing file is kept (first writer wins).
func writeUserKey(path string, key []byte, replace bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".user-hash.*.tmp")
	if err != nil {
		return fmt.Errorf("write user hash key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write user hash key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write user hash key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write user hash key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write user hash key: %w", err)
	}
	if replace {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("write user hash key: %w", err)
	}
	return nil
}
