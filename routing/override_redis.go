package routing

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
)

// Redis keys of the fleet's overrides. The hash tag keeps them in one slot
// (Redis Cluster) so that the scripts below may touch them together.
const (
	overridesHashKey    = "cairn:{cairn-overrides}:set"
	overridesVersionKey = "cairn:{cairn-overrides}:version"
	// OverridesChannel is where a change is announced (the new version).
	OverridesChannel = "cairn:overrides:changed"
)

// RedisStore keeps the overrides in a Redis hash (key → override JSON) with
// a version counter; every change increments the version and publishes it
// on OverridesChannel, so other replicas reload the set at once (and poll
// the version as a backstop for a lost message).
type RedisStore struct {
	rdb     redis.UniversalClient
	changed chan struct{}
	put     *redis.Script
	del     *redis.Script
}

// NewRedisStore returns the store and subscribes to change notices until
// ctx ends.
func NewRedisStore(ctx context.Context, rdb redis.UniversalClient) *RedisStore {
	s := &RedisStore{
		rdb:     rdb,
		changed: make(chan struct{}, 1),
		put: redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], v)
return v
`),
		del: redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, o = pcall(cjson.decode, cur)
  if (not ok) or o['basis'] == ARGV[2] then
    redis.call('HDEL', KEYS[1], ARGV[1])
    local v = redis.call('INCR', KEYS[2])
    redis.call('PUBLISH', ARGV[3], v)
    return v
  end
end
return tonumber(redis.call('GET', KEYS[2]) or '0')
`),
	}
	go s.subscribe(ctx)
	return s
}

func (s *RedisStore) subscribe(ctx context.Context) {
	ps := s.rdb.Subscribe(ctx, OverridesChannel)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			select {
			case s.changed <- struct{}{}:
			default:
			}
		}
	}
}

// Changed receives after a change is announced.
func (s *RedisStore) Changed() <-chan struct{} { return s.changed }

// Load reads the set and its version in one transaction.
func (s *RedisStore) Load(ctx context.Context) ([]configs.Override, int64, error) {
	var all *redis.MapStringStringCmd
	var ver *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, overridesHashKey)
		ver = p.Get(ctx, overridesVersionKey)
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, 0, fmt.Errorf("redis load overrides: %w", err)
	}
	v, _ := ver.Int64()
	var out []configs.Override
	for k, raw := range all.Val() {
		var o configs.Override
		if err := json.Unmarshal([]byte(raw), &o); err != nil {
			return nil, 0, fmt.Errorf("redis load overrides: %s: %w", k, err)
		}
		out = append(out, o)
	}
	return out, v, nil
}

// Put stores o and announces the change.
func (s *RedisStore) Put(ctx context.Context, o configs.Override) (int64, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return 0, fmt.Errorf("encode override: %w", err)
	}
	v, err := s.put.Run(ctx, s.rdb, []string{overridesHashKey, overridesVersionKey}, o.Key(), b, OverridesChannel).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis put override: %w", err)
	}
	return v, nil
}

// Delete removes the override under o's key if it has o's basis.
func (s *RedisStore) Delete(ctx context.Context, o configs.Override) (int64, error) {
	v, err := s.del.Run(ctx, s.rdb, []string{overridesHashKey, overridesVersionKey}, o.Key(), o.Basis, OverridesChannel).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis delete override: %w", err)
	}
	return v, nil
}
