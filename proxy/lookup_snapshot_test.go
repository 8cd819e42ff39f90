package proxy

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/loadtest"
	"github.com/cairnhq/cairn/routing"
)

// snapshotConfig routes m-* to route a or b (by variant) and allows key
// "pinned" (secret pinned-secret) on that route only.
const snapshotConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 5s }
keys:
  - { name: pinned, key_sha256: %s, routes: [%s] }
routes:
  - { name: a, match: [%s], targets: [{ provider: mock }] }
  - { name: b, match: [%s], targets: [{ provider: mock }] }
`

// TestLookupOneSnapshot: a request judges its key, its route and the key's
// allow-list on one table. Two configs alternate as fast as the gateway
// can swap them; in both, key pinned may use the route m-x goes to, so
// every request must pass. When auth read one table and route matching
// another, a request could pair config A's allow-list with config B's
// route and get 403.
func TestLookupOneSnapshot(t *testing.T) {
	_, up := startMock(t, loadtest.MockOptions{})
	yamlOf := func(route string) string {
		globA, globB := "m-*", "never-*"
		if route == "b" {
			globA, globB = "never-*", "m-*"
		}
		return fmt.Sprintf(snapshotConfig, up, sha256Hex("pinned-secret"), route, globA, globB)
	}
	tg := startGateway(t, yamlOf("a"), nil)
	var tables []*routing.Table
	for _, r := range []string{"a", "b"} {
		y := strings.ReplaceAll(yamlOf(r), "{{DATA}}", tg.dir+"/data")
		cfg, err := configs.Load([]byte(y), configs.Options{Dir: tg.dir})
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, routing.NewTable(cfg, routing.NewBreakers(5, 30*time.Second, nil)))
	}
	stop := make(chan struct{})
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tg.Live().Reload(tables[i%2])
			swaps.Add(1)
			runtime.Gosched()
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var bad atomic.Value
	var sent atomic.Int64
	var senders sync.WaitGroup
	for range 4 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for range 300 {
				req, _ := http.NewRequest("POST", tg.api+"/v1/chat/completions", strings.NewReader(chat("m-x", "")))
				req.Header.Set("Authorization", "Bearer pinned-secret")
				resp, err := client.Do(req)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				resp.Body.Close()
				sent.Add(1)
				if resp.StatusCode != 200 {
					bad.Store(fmt.Sprintf("status %d on route %q", resp.StatusCode, resp.Header.Get("x-cairn-route")))
					return
				}
			}
		}()
	}
	senders.Wait()
	close(stop)
	wg.Wait()
	t.Logf("%d requests during %d table swaps", sent.Load(), swaps.Load())
	if s := bad.Load(); s != nil {
		t.Fatalf("a request for m-x with key pinned failed while tables swapped: %v", s)
	}
}
