package routing

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/redistest"
)

func liveWithStore(t *testing.T, store OverrideStore, cache *FileStore) *Live {
	t.Helper()
	tb, _ := newTestTable(t)
	l := NewLive(tb)
	l.UseStore(LiveOptions{Store: store, Cache: cache, Replica: "test"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.LoadOverrides(ctx)
	return l
}

// A rollback made while Redis is down holds on this replica, is counted
// pending, and reaches the fleet once Redis answers again; a replica that
// starts while Redis is down applies its local copy and is ready.
func TestOverridesRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cacheA := NewFileStore(t.TempDir())
	a := liveWithStore(t, NewRedisStore(ctx, rdb), cacheA)
	if !a.Ready() {
		t.Fatal("A not ready with Redis up")
	}
	go a.Run(ctx)

	rs.Kill()
	if _, _, err := a.Rollback("support-bot", "canary"); err != nil {
		t.Fatalf("rollback with Redis down: %v", err)
	}
	if got := a.Load().Route("support-bot").Cohorts(); !slices.Equal(got, []string{"stable"}) {
		t.Fatalf("cohorts after a rollback with Redis down = %v", got)
	}
	if n := a.Pending(); n != 1 {
		t.Errorf("pending = %d; want 1", n)
	}
	// A replica starting now, Redis down, from A's local copy.
	c := liveWithStore(t, NewRedisStore(ctx, rdb), cacheA)
	if !c.Ready() || !slices.Equal(c.Load().Route("support-bot").Cohorts(), []string{"stable"}) {
		t.Errorf("a replica started with Redis down: ready %v, cohorts %v", c.Ready(), c.Load().Route("support-bot").Cohorts())
	}

	rs.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for a.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if a.Pending() != 0 {
		t.Fatal("the pending rollback never reached Redis")
	}
	b := liveWithStore(t, NewRedisStore(ctx, rdb), nil)
	if got := b.Load().Route("support-bot").Cohorts(); !slices.Equal(got, []string{"stable"}) {
		t.Errorf("replica B after Redis returned: cohorts %v; want the rollback", got)
	}
	ovs := b.Overrides()
	if len(ovs) != 1 || ovs[0].Source != "rollback:auto" || ovs[0].Basis == "" || ovs[0].At.IsZero() {
		t.Errorf("B's overrides = %+v", ovs)
	}
}

// Without Redis the file store keeps overrides across a restart, and a
// restore clears them there too.
func TestOverridesFileStore(t *testing.T) {
	dir := t.TempDir()
	a := liveWithStore(t, NewFileStore(dir), nil)
	p := configs.Prompt{Version: "v0", System: "old"}
	if _, _, _, err := a.Mitigate(configs.Override{Route: "three", What: configs.OverridePrompt, Prompt: &p, Source: "prompt:revert", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Rollback("three", "beta"); err != nil {
		t.Fatal(err)
	}
	b := liveWithStore(t, NewFileStore(dir), nil)
	r := b.Load().Route("three")
	if r.Config.Prompt != p || !slices.Equal(r.Cohorts(), []string{"stable", "canary"}) {
		t.Fatalf("after restart: prompt %+v cohorts %v", r.Config.Prompt, r.Cohorts())
	}
	if _, _, _, err := b.Restore("three", configs.OverrideCohort, "beta"); err != nil {
		t.Fatal(err)
	}
	c := liveWithStore(t, NewFileStore(dir), nil)
	if got := c.Load().Route("three").Cohorts(); len(got) != 3 {
		t.Errorf("after restore and restart: cohorts %v; want all three", got)
	}
	if _, _, _, err := c.Restore("three", configs.OverrideCohort, "beta"); err != ErrNoOverride {
		t.Errorf("second restore = %v; want ErrNoOverride", err)
	}
}

// A Redis that restarts empty (no persistence) gets the fleet's
// overrides back from the replicas that hold them.
func TestOverridesRedisLosesSet(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a := liveWithStore(t, NewRedisStore(ctx, rdb), nil)
	go a.Run(ctx)
	if _, _, err := a.Rollback("support-bot", "canary"); err != nil {
		t.Fatal(err)
	}
	rs.Kill()
	rs.Restart() // empty: persistence is off
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ovs, _, err := NewRedisStore(ctx, rdb).Load(ctx)
		if err == nil && len(ovs) == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	b := liveWithStore(t, NewRedisStore(ctx, rdb), nil)
	if got := b.Load().Route("support-bot").Cohorts(); !slices.Equal(got, []string{"stable"}) {
		t.Errorf("a replica reading the restarted Redis: cohorts %v; want the rollback written back", got)
	}
	if got := a.Load().Route("support-bot").Cohorts(); !slices.Equal(got, []string{"stable"}) {
		t.Errorf("A lost its rollback when Redis lost the set: cohorts %v", got)
	}
}
