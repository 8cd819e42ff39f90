package incidents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fleet detection (issue 17): with Redis, each replica publishes the rate
// counts of its current detection windows (per route and cohort) every
// fleetEvery, off the request path, and evaluates the rate signals on the
// sum of every replica's fresh counts. Three replicas sharing the traffic
// then detect as fast as one replica that saw all of it, and a quiet
// replica still sees the fleet's failures. Incidents are claimed per route
// and cohort in Redis (see redisStore.open), so however many replicas fire,
// one failing canary yields one incident. The latency and token signals
// need whole histograms and stay per replica.

const (
	// fleetEvery is how often counts are published and merged.
	fleetEvery = 200 * time.Millisecond
	// fleetStale drops a replica's counts not refreshed for this long
	// (a replica that stopped).
	fleetStale  = 2 * time.Second
	fleetPrefix = "cairn:{cairn-fleet}:w:"
)

// fleet publishes and merges detector counts through Redis.
type fleet struct {
	rdb redis.UniversalClient
	// id names this process (replicas may share a host name).
	id  string
	log *slog.Logger
	// firing is the edge state of merged signals, by route, cohort and
	// signal; owned by the fleet goroutine.
	firing map[string]bool
	// published are the routes this replica wrote counts for last time.
	published map[string]bool
	errors    atomic.Int64
	fires     atomic.Int64
}

// fleetCounts are the rate counts of one replica's window for one cohort.
type fleetCounts struct{ n, failed, contract, r429 int64 }

func newFleet(rdb redis.UniversalClient, replica string, log *slog.Logger) *fleet {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &fleet{rdb: rdb, id: replica + "/" + hex.EncodeToString(b[:]), log: log,
		firing: map[string]bool{}, published: map[string]bool{}}
}

// fleetLoop runs the fleet until the manager stops.
func (m *Manager) fleetLoop() {
	defer m.wg.Done()
	t := time.NewTicker(fleetEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.fleetTick(m.now())
		}
	}
}

// fleetTick publishes this replica's counts, reads everyone's and hands
// any merged signal that crosses to the responder.
func (m *Manager) fleetTick(now time.Time) {
	f := m.fleet
	local := m.det.localCounts(now)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	routes := m.det.knownRoutes()
	_, err := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for route, cohorts := range local {
			key := fleetPrefix + route
			for cohort, c := range cohorts {
				p.HSet(ctx, key, f.id+"\x00"+cohort, fmt.Sprintf("%d,%d,%d,%d,%d", c.n, c.failed, c.contract, c.r429, now.UnixMilli()))
			}
			p.PExpire(ctx, key, m.cfg.window+fleetStale)
		}
		return nil
	})
	if err != nil {
		f.errors.Add(1)
		m.log.Debug("fleet counts not published", "err", err)
		return
	}
	cmds, err := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range routes {
			p.HGetAll(ctx, fleetPrefix+r)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		f.errors.Add(1)
		return
	}
	remote := map[string]map[string]fleetCounts{}
	for i, cmd := range cmds {
		all, _ := cmd.(*redis.MapStringStringCmd).Result()
		for field, v := range all {
			id, cohort, ok := strings.Cut(field, "\x00")
			if !ok || id == f.id {
				continue
			}
			c, at, ok := parseFleetCounts(v)
			if !ok || now.Sub(at) > fleetStale {
				continue
			}
			if remote[routes[i]] == nil {
				remote[routes[i]] = map[string]fleetCounts{}
			}
			x := remote[routes[i]][cohort]
			x.n, x.failed, x.contract, x.r429 = x.n+c.n, x.failed+c.failed, x.contract+c.contract, x.r429+c.r429
			remote[routes[i]][cohort] = x
		}
	}
	for _, fr := range m.det.fleetEval(remote, f.firing, now) {
		f.fires.Add(1)
		select {
		case m.fires <- fr:
		default:
			m.droppedFires.Add(1)
		}
	}
}

// FleetStats returns the fleet detection's counters: publish or merge
// rounds that failed (Redis errors) and signals fired on merged counts.
// Both are 0 without Redis.
func (m *Manager) FleetStats() (errors, fires int64) {
	if m.fleet == nil {
		return 0, 0
	}
	return m.fleet.errors.Load(), m.fleet.fires.Load()
}

func parseFleetCounts(v string) (fleetCounts, time.Time, bool) {
	parts := strings.Split(v, ",")
	if len(parts) != 5 {
		return fleetCounts{}, time.Time{}, false
	}
	var n [5]int64
	for i, p := range parts {
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return fleetCounts{}, time.Time{}, false
		}
		n[i] = x
	}
	return fleetCounts{n[0], n[1], n[2], n[3]}, time.UnixMilli(n[4]), true
}

// localCounts returns this replica's current window counts per route and
// cohort (only cohorts with requests).
func (d *detector) localCounts(now time.Time) map[string]map[string]fleetCounts {
	idx := d.index(now)
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]map[string]fleetCounts{}
	for name, rd := range d.routes {
		for _, cd := range rd.cohorts {
			cd.s.advance(idx)
			c := cd.s.cur
			if c.n == 0 {
				continue
			}
			if out[name] == nil {
				out[name] = map[string]fleetCounts{}
			}
			out[name][cd.name] = fleetCounts{c.n, c.failed, c.contract, c.r429}
		}
	}
	return out
}

// knownRoutes returns the routes of the live state.
func (d *detector) knownRoutes() []string {
	p := d.live.Load()
	if p == nil {
		return nil
	}
	out := make([]string, 0, len(*p))
	for name := range *p {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// fleetEval evaluates the rate signals of every route on the local counts
// plus remote's, and returns a fire for each merged crossing on its rising
// edge (firing holds the edges). A scope this replica already fired on
// locally does not fire again.
func (d *detector) fleetEval(remote map[string]map[string]fleetCounts, firing map[string]bool, now time.Time) []*fire {
	if d.cfg.disabled || len(remote) == 0 {
		// Nothing from other replicas: the local detector sees it all.
		clear(firing)
		return nil
	}
	idx := d.index(now)
	d.mu.Lock()
	defer d.mu.Unlock()
	var fires []*fire
	for route, rc := range remote {
		lr, ok := d.liveRoute(route)
		if !ok || len(lr.cohorts) == 0 {
			continue
		}
		rd := d.route(route)
		merged := map[string]agg{}
		for _, cohort := range lr.cohorts {
			var a agg
			if cd := d.findCohort(rd, cohort); cd != nil {
				cd.s.advance(idx)
				a.n, a.failed, a.contract, a.r429 = cd.s.cur.n, cd.s.cur.failed, cd.s.cur.contract, cd.s.cur.r429
			}
			c := rc[cohort]
			a.n, a.failed, a.contract, a.r429 = a.n+c.n, a.failed+c.failed, a.contract+c.contract, a.r429+c.r429
			merged[cohort] = a
		}
		for _, cohort := range lr.cohorts {
			cur := merged[cohort]
			var others agg
			name, n := "", 0
			for _, oc := range lr.cohorts {
				if oc != cohort {
					x := merged[oc]
					others.n, others.failed, others.contract, others.r429 = others.n+x.n, others.failed+x.failed, others.contract+x.contract, others.r429+x.r429
					name = oc
					n++
				}
			}
			if n != 1 {
				name = ""
			}
			for sig := range nSignals {
				if !isRateSignal(sig) || !d.cfg.enabled(sig) {
					continue
				}
				key := route + "\x00" + cohort + "\x00" + signalName(sig)
				var o obs
				var base agg
				if len(lr.cohorts) > 1 {
					o = d.eval(sig, &cur, &others, &base, name)
				} else {
					o = d.eval(sig, &cur, nil, &base, "")
				}
				if o.verdict != verdictCrossing {
					if o.verdict == verdictBelow {
						firing[key] = false
					}
					continue
				}
				if firing[key] {
					continue
				}
				firing[key] = true
				cd := d.cohort(rd, cohort)
				if len(lr.cohorts) > 1 {
					if cd.firing[sig] {
						continue // fired here on local counts already
					}
					cd.firing[sig] = true
					fires = append(fires, d.newFire(rd, cd, sig, o, now))
					continue
				}
				if rd.firing[sig] {
					continue
				}
				rd.firing[sig] = true
				fires = append(fires, d.newFire(rd, nil, sig, o, now))
			}
		}
	}
	return fires
}

func (d *detector) findCohort(rd *routeDet, name string) *cohortDet {
	for _, c := range rd.cohorts {
		if c.name == name {
			return c
		}
	}
	return nil
}
