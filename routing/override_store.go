package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/cairnhq/cairn/configs"
)

// OverrideStore keeps the fleet's overrides: a versioned set keyed by
// configs.Override.Key. Every change increments the version. Implementations
// must be safe for concurrent use.
type OverrideStore interface {
	// Load returns every stored override and the set's version.
	Load(ctx context.Context) ([]configs.Override, int64, error)
	// Put stores o under its key (replacing any) and returns the new
	// version.
	Put(ctx context.Context, o configs.Override) (int64, error)
	// Delete removes the override under o's key if it still has o's basis
	// (a newer override made on another basis stays) and returns the
	// version after.
	Delete(ctx context.Context, o configs.Override) (int64, error)
	// Changed returns a channel that receives when another replica may
	// have changed the set, or nil when nothing else writes the store.
	Changed() <-chan struct{}
}

// FileStore keeps overrides in one JSON file written atomically
// (temporary file, fsync, rename, fsync of the directory): a crash leaves
// the old set or the new one. It is the store without Redis, and with
// Redis the local copy a replica starts from when Redis is down.
type FileStore struct {
	path string
	mu   sync.Mutex
}

// overridesFile is the file under data_dir.
const overridesFile = "overrides.json"

// NewFileStore returns the store in dataDir/overrides.json.
func NewFileStore(dataDir string) *FileStore {
	return &FileStore{path: filepath.Join(dataDir, overridesFile)}
}

type overridesDoc struct {
	Version   int64              `json:"version"`
	Overrides []configs.Override `json:"overrides"`
}

// Load reads the file; a missing file is an empty set at version 0.
func (s *FileStore) Load(context.Context) ([]configs.Override, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.read()
	return d.Overrides, d.Version, err
}

func (s *FileStore) read() (overridesDoc, error) {
	var d overridesDoc
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("read overrides: %w", err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return overridesDoc{}, fmt.Errorf("read overrides %s: %w", s.path, err)
	}
	return d, nil
}

// Put stores o.
func (s *FileStore) Put(_ context.Context, o configs.Override) (int64, error) {
	return s.change(func(d *overridesDoc) bool {
		for i := range d.Overrides {
			if d.Overrides[i].Key() == o.Key() {
				d.Overrides[i] = o
				return true
			}
		}
		d.Overrides = append(d.Overrides, o)
		return true
	})
}

// Delete removes the override under o's key when it has o's basis.
func (s *FileStore) Delete(_ context.Context, o configs.Override) (int64, error) {
	return s.change(func(d *overridesDoc) bool {
		for i := range d.Overrides {
			if d.Overrides[i].Key() == o.Key() && d.Overrides[i].Basis == o.Basis {
				d.Overrides = append(d.Overrides[:i], d.Overrides[i+1:]...)
				return true
			}
		}
		return false
	})
}

// Save replaces the whole set (the local copy of the Redis set).
func (s *FileStore) Save(ovs []configs.Override, version int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write(overridesDoc{Version: version, Overrides: ovs})
}

func (s *FileStore) exists() bool {
	_, err := os.Stat(s.path)
	return err == nil
}

// Changed returns nil: one process owns a data_dir.
func (s *FileStore) Changed() <-chan struct{} { return nil }

func (s *FileStore) change(fn func(*overridesDoc) bool) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.read()
	if err != nil {
		return 0, err
	}
	if !fn(&d) {
		return d.Version, nil
	}
	d.Version++
	if err := s.write(d); err != nil {
		return 0, err
	}
	return d.Version, nil
}

func (s *FileStore) write(d overridesDoc) error {
	if d.Overrides == nil {
		d.Overrides = []configs.Override{}
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("encode overrides: %w", err)
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write overrides: %w", err)
	}
	f, err := os.CreateTemp(dir, ".overrides.*.tmp")
	if err != nil {
		return fmt.Errorf("write overrides: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write overrides: %w", err)
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
		return fmt.Errorf("write overrides: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write overrides: %w", err)
	}
	if dd, err := os.Open(dir); err == nil {
		_ = dd.Sync()
		dd.Close()
	}
	return nil
}
