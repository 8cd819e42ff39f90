package incidents

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/internal/redistest"
)

// Audit entries appended while Redis is down (killed, then restarted
// empty) are pushed to the shared list, in order, when it returns, so a
// second replica sees every change.
func TestAuditRedisOutageBackfilled(t *testing.T) {
	srv := redistest.Start(t)
	client := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
			ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, err := OpenAudit(t.TempDir(), client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenAudit(t.TempDir(), client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv.Kill()
	var ids []string
	for i := range 5 {
		e, err := a.Append(AuditEntry{Source: SourceReload, Reason: "during the outage " + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if n := a.Unsaved(); n != 5 {
		t.Errorf("Unsaved() = %d with Redis down; want 5", n)
	}
	srv.Restart()
	eventually(t, "audit entries pushed to redis", func() bool { return a.Unsaved() == 0 })
	got := b.List(time.Time{})
	if len(got) != 5 {
		t.Fatalf("replica b sees %d entries; want the 5 made during the outage", len(got))
	}
	for i, e := range got {
		if e.ID != ids[i] {
			t.Errorf("entry %d = %s; want %s", i, e.ID, ids[i])
		}
	}
}
