package main

// Fleet detection (issue 17): detector counts merged across replicas
// through Redis; one failing canary yields one incident.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/cairnhq/cairn/loadtest"
)

// fleetDetectConfig: %[4]s the mock, %[5]s the Redis URL, %[6]s min_requests.
const fleetDetectConfig = `
listen: %[1]s
admin_listen: %[2]s
data_dir: %[3]s
redis_url: %[5]s
providers:
  - { name: mock, base_url: "http://%[4]s/v1", timeout: 5s }
routes:
  - name: support-bot
    sticky: user
    targets:
      - { provider: mock, model: stable-model, weight: 50 }
      - { provider: mock, model: canary-model, weight: 50, cohort: canary }
    auto_rollback: true
detection: { window: 30s, min_requests: %[6]s, error_rate: 0.2 }
`

func startDetectFleet(t *testing.T, mock, redisURL string, minRequests int) []*relGateway {
	t.Helper()
	cfg := strings.NewReplacer("%[4]s", mock, "%[5]s", redisURL, "%[6]s", fmt.Sprint(minRequests)).Replace(fleetDetectConfig)
	gs := make([]*relGateway, 3)
	for i := range gs {
		gs[i] = startRelGateway(t, cfg)
	}
	return gs
}

func incidentIDs(t *testing.T, g *relGateway) []string {
	t.Helper()
	_, b := adminDo(t, "GET", g.admin+"/admin/incidents", "")
	var list []struct{ ID string }
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("incidents: %v %s", err, b)
	}
	var ids []string
	for _, x := range list {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	return ids
}

// The canary's failures are spread over three replicas, round robin,
// and no replica sees more than 20 of them, half of min_requests 40: no
// replica alone may decide, the fleet sees enough. Cairn opens one incident
// (the canary's 429s cross two signals on three replicas) and the canary is
// rolled back on every replica.
func TestFleetDetectionMergesReplicas(t *testing.T) {
	rs := redistest.Start(t)
	m, mock := startInProcMock(t)
	m.SetFault("canary-model", loadtest.Fault{Status: 429})
	gs := startDetectFleet(t, mock, rs.URL(), 40)
	failed := make([]int, len(gs))
	rolled := false
	for u := 0; !rolled; u++ {
		if u > 3000 {
			t.Fatalf("no rollback after %v canary failures per replica", failed)
		}
		gi := u % len(gs)
		if failed[gi] >= 20 {
			// Every replica is at its share: the fleet has 60 ≥ 40.
			for _, g := range gs {
				waitState(t, g, 3*time.Second, "the fleet rolls the canary back", rolledBack("canary"))
			}
			break
		}
		r := postChat(gs[gi].api, "", chatBody("support-bot", fmt.Sprintf(`"user":"f-%d"`, u)))
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.status != 200 {
			failed[gi]++
		}
		if u%30 == 0 {
			rolled = slices.Contains(routeState(t, gs[gi]).RolledBack, "canary")
		}
	}
	t.Logf("canary failures per replica when the fleet rolled back: %v (min_requests 40)", failed)
	for _, g := range gs {
		waitState(t, g, 3*time.Second, "the fleet rolls the canary back", rolledBack("canary"))
	}
	var ids []string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ids = incidentIDs(t, gs[0]); len(ids) > 0 {
			break
		}
	}
	time.Sleep(600 * time.Millisecond) // every replica's fleet tick has run on the merged counts
	for _, g := range gs {
		if got := incidentIDs(t, g); len(got) != 1 || !slices.Equal(got, ids) {
			t.Errorf("incidents on %s = %v; want one, %v", g.admin, got, ids)
		}
	}
}

// figure: 3 replicas at 200 RPS in total, the canary starts failing: time
// from the first bad response a client got to the last replica applying
// the rollback.
func TestFleetRollbackFigure(t *testing.T) {
	rs := redistest.Start(t)
	m, mock := startInProcMock(t)
	gs := startDetectFleet(t, mock, rs.URL(), 20)
	const rps = 200
	var firstBad atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	m.SetFault("canary-model", loadtest.Fault{Status: 500})
	tick := time.NewTicker(time.Second / rps)
	defer tick.Stop()
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := postChat(gs[i%3].api, "", chatBody("support-bot", fmt.Sprintf(`"user":"load-%d"`, i)))
				if r.err == nil && r.status >= 500 {
					firstBad.CompareAndSwap(0, time.Now().UnixNano())
				}
			}()
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	var last time.Time
	for _, g := range gs {
		waitState(t, g, 10*time.Second, "every replica rolls back", rolledBack("canary"))
		last = time.Now()
	}
	if firstBad.Load() == 0 {
		t.Fatal("no bad response seen")
	}
	took := last.Sub(time.Unix(0, firstBad.Load()))
	t.Logf("figure: 3 replicas, %d RPS in total: first bad response → last replica rolled back in %v", rps, took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("first bad response → last replica rolled back = %v; want ≤ 2s", took)
	}
	_ = http.DefaultClient
}
