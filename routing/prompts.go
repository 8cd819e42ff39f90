package routing

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
)

// PromptVersion is one prompt a route has served: its version label,
// system text and the text's SHA-256, when it was first and last seen live,
// and the config revision that first shipped it.
type PromptVersion struct {
	Route     string    `json:"route"`
	Version   string    `json:"version"`
	System    string    `json:"system"`
	SHA256    string    `json:"sha256"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Revision  string    `json:"config_revision"`
	// Live is true for the prompt the route serves now (on this replica).
	Live bool `json:"live"`
}

func (p *PromptVersion) key() string { return p.Route + "\x00" + p.Version + "\x00" + p.SHA256 }

// Prompt returns the version as a configs.Prompt.
func (p *PromptVersion) Prompt() configs.Prompt {
	return configs.Prompt{Version: p.Version, System: p.System}
}

// ErrUnknownPrompt is returned for a version the route never served.
var ErrUnknownPrompt = errors.New("the route never served that prompt version")

// Prompts is the registry of every prompt version each route served, kept
// in Redis (shared by the fleet) or in data_dir/prompts.json. Seen is
// called when the live table changes and every PromptsTouchEvery while it
// holds, never per request. It is safe for concurrent use.
type Prompts struct {
	rdb  redis.UniversalClient
	path string

	mu    sync.Mutex
	local map[string]PromptVersion // the file's content, or this replica's view
}

// PromptsTouchEvery is how often the live prompts' last_seen is refreshed.
const PromptsTouchEvery = 10 * time.Second

const (
	promptsFirstKey = "cairn:{cairn-prompts}:versions"
	promptsLastKey  = "cairn:{cairn-prompts}:last_seen"
	promptsFile     = "prompts.json"
)

// NewPrompts returns the registry in Redis when rdb is set, else in
// dataDir/prompts.json (read now; a bad file starts an empty registry and
// returns the error).
func NewPrompts(dataDir string, rdb redis.UniversalClient) (*Prompts, error) {
	p := &Prompts{rdb: rdb, path: filepath.Join(dataDir, promptsFile), local: map[string]PromptVersion{}}
	if rdb != nil {
		return p, nil
	}
	b, err := os.ReadFile(p.path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read prompt registry: %w", err)
	}
	var vs []PromptVersion
	if err := json.Unmarshal(b, &vs); err != nil {
		return p, fmt.Errorf("read prompt registry %s: %w", p.path, err)
	}
	for _, v := range vs {
		p.local[v.key()] = v
	}
	return p, nil
}

// Seen records that st's routes serve their live prompts at now.
func (p *Prompts) Seen(ctx context.Context, st configs.State, now time.Time) error {
	now = now.UTC()
	var vs []PromptVersion
	for _, r := range st.Routes {
		if r.Prompt.Version == "" && r.Prompt.System == "" {
			continue
		}
		vs = append(vs, PromptVersion{Route: r.Name, Version: r.Prompt.Version, System: r.Prompt.System,
			SHA256: r.Prompt.SystemSHA256(), FirstSeen: now, LastSeen: now, Revision: st.Revision})
	}
	if p.rdb != nil {
		return p.seenRedis(ctx, vs, now)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range vs {
		if cur, ok := p.local[v.key()]; ok {
			cur.LastSeen = now
			p.local[v.key()] = cur
			continue
		}
		p.local[v.key()] = v
	}
	return p.save()
}

func (p *Prompts) seenRedis(ctx context.Context, vs []PromptVersion, now time.Time) error {
	if len(vs) == 0 {
		return nil
	}
	_, err := p.rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for _, v := range vs {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			pp.HSetNX(ctx, promptsFirstKey, v.key(), b)
			pp.HSet(ctx, promptsLastKey, v.key(), now.UnixMilli())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis prompt registry: %w", err)
	}
	return nil
}

func (p *Prompts) save() error {
	vs := make([]PromptVersion, 0, len(p.local))
	for _, v := range p.local {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b PromptVersion) int {
		return cmp.Or(cmp.Compare(a.Route, b.Route), a.FirstSeen.Compare(b.FirstSeen), cmp.Compare(a.key(), b.key()))
	})
	b, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		return fmt.Errorf("encode prompt registry: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.path), ".prompts.*.tmp")
	if err != nil {
		return fmt.Errorf("write prompt registry: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write prompt registry: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write prompt registry: %w", err)
	}
	return nil
}

// List returns the versions the route served, oldest first (by first
// seen). live marks the one it serves now.
func (p *Prompts) List(ctx context.Context, route string, live configs.Prompt) ([]PromptVersion, error) {
	var all []PromptVersion
	if p.rdb != nil {
		first, err := p.rdb.HGetAll(ctx, promptsFirstKey).Result()
		if err != nil {
			return nil, fmt.Errorf("redis prompt registry: %w", err)
		}
		last, err := p.rdb.HGetAll(ctx, promptsLastKey).Result()
		if err != nil {
			return nil, fmt.Errorf("redis prompt registry: %w", err)
		}
		for k, raw := range first {
			var v PromptVersion
			if json.Unmarshal([]byte(raw), &v) != nil || v.Route != route {
				continue
			}
			if ms, err := strconv.ParseInt(last[k], 10, 64); err == nil && ms > v.LastSeen.UnixMilli() {
				v.LastSeen = time.UnixMilli(ms).UTC()
			}
			all = append(all, v)
		}
	} else {
		p.mu.Lock()
		for _, v := range p.local {
			if v.Route == route {
				all = append(all, v)
			}
		}
		p.mu.Unlock()
	}
	for i := range all {
		all[i].Live = all[i].Version == live.Version && all[i].System == live.System
	}
	slices.SortFunc(all, func(a, b PromptVersion) int {
		return cmp.Or(a.FirstSeen.Compare(b.FirstSeen), cmp.Compare(a.key(), b.key()))
	})
	return all, nil
}

// Find returns the version to revert the route to: the newest entry
// labelled to, or with to "" the one served most recently before the live
// prompt. ErrUnknownPrompt when there is none.
func (p *Prompts) Find(ctx context.Context, route, to string, live configs.Prompt) (PromptVersion, error) {
	vs, err := p.List(ctx, route, live)
	if err != nil {
		return PromptVersion{}, err
	}
	var best *PromptVersion
	for i := range vs {
		v := &vs[i]
		switch {
		case to != "" && v.Version != to:
			continue
		case to == "" && v.Live:
			continue
		case best == nil:
			best = v
		case to == "" && v.LastSeen.After(best.LastSeen):
			best = v
		case to != "" && v.FirstSeen.After(best.FirstSeen):
			best = v
		}
	}
	if best == nil {
		if to == "" {
			return PromptVersion{}, fmt.Errorf("route %q: no earlier prompt version is known: %w", route, ErrUnknownPrompt)
		}
		return PromptVersion{}, fmt.Errorf("route %q never served prompt version %q: %w", route, to, ErrUnknownPrompt)
	}
	return *best, nil
}
