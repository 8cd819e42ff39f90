package ratelimit

// Issue 15, "Limits", with Redis hung (SIGSTOP: connections stay open and
// nothing answers) rather than refused: the breaker needs three failed
// calls of 1s each to open, and a fail-open key must not be refused for
// want of a lease in between.

import (
	"context"
	"crypto/sha256"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// hogCPU keeps every CPU busy (twice over) until stop closes, as the
// starved-machine limits test does.
func hogCPU(stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range 2 * runtime.NumCPU() {
		wg.Go(func() {
			sum := sha256.Sum256(nil)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for range 1000 {
					sum = sha256.Sum256(sum[:])
				}
			}
		})
	}
	return &wg
}

// windowLeft waits, if needed, until at least d of the current Redis
// minute remain.
func windowLeft(t *testing.T, c *redis.Client, d time.Duration) {
	t.Helper()
	now, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatalf("TIME: %v", err)
	}
	if left := time.Minute - time.Duration(now.UnixNano()%int64(time.Minute)); left < d {
		time.Sleep(left + 50*time.Millisecond)
	}
}

// hungTally counts the outcomes of checks.
type hungTally struct {
	admitted, noLease, limited, degraded atomic.Int64
	worst                                atomic.Int64 // ns
}

func (h *hungTally) check(l *Redis, key string, lim Limits) Decision {
	start := time.Now()
	d := l.Check(context.Background(), key, lim, "")
	el := int64(time.Since(start))
	for w := h.worst.Load(); el > w && !h.worst.CompareAndSwap(w, el); w = h.worst.Load() {
	}
	switch {
	case d.Allowed:
		h.admitted.Add(1)
	case d.NoLease:
		h.noLease.Add(1)
	default:
		h.limited.Add(1)
	}
	if d.Degraded {
		h.degraded.Add(1)
	}
	return d
}

// TestLeaseHungRedisFailOpen: Redis is SIGSTOPped while four goroutines
// drive a fail-open key and CPU hogs starve the machine. The replica's
// slice runs out long before the breaker opens (three calls of 1s); the
// requests that find it empty must be decided by the outage rule (the
// replica's share of what remained of the window at its last answer from
// Redis), not refused for want of a lease. With one replica the share is
// everything that remained, so the window admits exactly its limit, and
// Redis, once back, counts exactly that. The old limiter refused every
// request that found the slice empty with NoLease until the breaker
// opened, 1 to 3 s on.
func TestLeaseHungRedisFailOpen(t *testing.T) {
	srv := redistest.Start(t)
	l, c := newTestRedis(t, srv, RedisOptions{}) // the default 250ms wait
	windowLeft(t, c, 15*time.Second)
	ctx := context.Background()
	const rpm = 1500
	lim := Limits{RPM: rpm}
	closed := Limits{RPM: rpm, FailClosed: true}

	var before, during hungTally
	// Healthy: establish the slice. A lease that misses the wait on a
	// loaded machine is refused (NoLease) and retried.
	for before.admitted.Load() < 200 {
		if d := before.check(l, "app", lim); !d.Allowed && !d.NoLease {
			t.Fatalf("check with Redis healthy refused: %+v", d)
		}
	}

	stop := make(chan struct{})
	hogs := hogCPU(stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		hogs.Wait()
	}()
	srv.Pause()
	paused := time.Now()
	defer srv.Resume()
	// Hung: four goroutines until the window's limit is reached and
	// refused (the share spent), at most 6s (the breaker opens within
	// ~3s; past that the outage rule is the same share).
	var wg sync.WaitGroup
	var closedAdmitted atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for time.Since(paused) < 6*time.Second {
				if before.admitted.Load()+during.admitted.Load() >= rpm && during.limited.Load() > 0 {
					return
				}
				for range 10 { // a burst per turn: the hogs leave few turns
					during.check(l, "app", lim)
				}
				if w == 0 {
					// A cold fail_closed key holds nothing: refused
					// while Redis is hung, whichever way.
					if d := l.Check(ctx, "closed", closed, ""); d.Allowed {
						closedAdmitted.Add(1)
					}
				}
				runtime.Gosched()
			}
		})
	}
	wg.Wait()
	hungFor := time.Since(paused)
	degraded := l.Degraded()
	srv.Resume()
	close(stop)
	hogs.Wait()

	total := before.admitted.Load() + during.admitted.Load()
	t.Logf("figure: rpm %d, one replica, Redis SIGSTOPped for %v under CPU hogs: %d admitted before, %d during (%d degraded), %d refused as over the limit, %d refused for want of a lease; worst check %v; breaker open at the end: %v",
		rpm, hungFor.Round(time.Millisecond), before.admitted.Load(), during.admitted.Load(), during.degraded.Load(), during.limited.Load(),
		during.noLease.Load(), time.Duration(during.worst.Load()).Round(time.Millisecond), degraded)
	if n := during.noLease.Load(); n != 0 {
		t.Errorf("%d checks of a fail-open key refused for want of a lease while Redis was hung; want 0", n)
	}
	if total != rpm {
		t.Errorf("admitted %d in the window with one replica; want exactly the limit %d (the outage share is all that remained)", total, rpm)
	}
	if n := closedAdmitted.Load(); n != 0 {
		t.Errorf("a cold fail_closed key was admitted %d times while Redis was hung", n)
	}

	// Redis back: the requests admitted from the share are reported, so
	// Redis counts at least what was admitted (more if it ran a lease call
	// whose answer came too late to be used), and the window stays spent.
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The debt first, under one lock: once none is left here or in
		// flight, Redis's count is final (the workers have stopped).
		s := l.state("app")
		s.mu.Lock()
		debt, fetching := s.outReqs, s.fetching
		s.mu.Unlock()
		r, _ := c.HGet(ctx, DefaultPrefix+"{app}", "r").Int()
		if debt == 0 && !fetching && !l.Degraded() {
			t.Logf("redis counts %d requests once the debt is in; %d were admitted", r, total)
			if r < int(total) {
				var b strings.Builder
				l.WritePrometheus(&b)
				all, _ := c.HGetAll(ctx, DefaultPrefix+"{app}").Result()
				s.mu.Lock()
				t.Logf("redis hash %v; replica: window %d ending in %v, outage window %d, debt in flight for %d, last seen %d, holds %d\n%s",
					all, s.win, time.Until(s.end), s.outWin, s.sendWin, s.seenR, s.reqs, b.String())
				s.mu.Unlock()
			}
			// Beyond what was admitted: the grant of the lease call in
			// flight when Redis froze (run after it gave up), at most a
			// lease cap; calls made once Redis counted as hung carry no
			// grant and no debt, so nothing is counted twice.
			lost := int(l.lm.unansweredReqs.Load())
			if capR := (rpm + 3) / 4; r < int(total) || r > int(total)+min(capR, lost) {
				t.Errorf("redis counts %d requests; %d were admitted; want at most what unanswered calls asked for (%d), at most one lease cap (%d), more",
					r, total, lost, capR)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("debt %d still unreported 10s after Redis resumed (breaker open %v)", debt, l.Degraded())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := l.Check(ctx, "app", lim, ""); d.Allowed {
		t.Errorf("check after the window was spent admitted: %+v", d)
	}
}

// TestLeaseFrozenRedisStaysExact: Redis frozen (SIGSTOP) for less than
// the wait deadline is slow, not hung: 50 concurrent checks of a cold
// fail-open key at rpm 20 on two replicas wait for their leases and
// exactly 20 are admitted, none from an outage share, under CPU hogs.
func TestLeaseFrozenRedisStaysExact(t *testing.T) {
	srv := redistest.Start(t)
	const wait = time.Second // the starved-machine tests' redis_timeout
	a, ca := newTestRedis(t, srv, RedisOptions{Replicas: 2, Timeout: wait})
	b, _ := newTestRedis(t, srv, RedisOptions{Replicas: 2, Timeout: wait})
	freshWindow(t, ca)
	a.heartbeat()
	b.heartbeat()
	waitLive(t, a, 2)
	waitLive(t, b, 2)
	stop := make(chan struct{})
	hogs := hogCPU(stop)
	defer func() { close(stop); hogs.Wait() }()

	const freeze = 300 * time.Millisecond
	lim := Limits{RPM: 20}
	var tally hungTally
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 50 {
		l := []*Redis{a, b}[i%2]
		wg.Go(func() {
			<-start
			tally.check(l, "burst", lim)
		})
	}
	srv.Pause()
	resume := time.AfterFunc(freeze, srv.Resume)
	defer resume.Stop()
	close(start)
	wg.Wait()
	outage := a.lm.outageAdms.Load() + b.lm.outageAdms.Load()
	t.Logf("figure: rpm 20, two replicas, 50 concurrent checks with Redis frozen %v (wait deadline %v) under CPU hogs: %d admitted, %d refused, %d for want of a lease, %d degraded, %d from an outage share; worst check %v",
		freeze, wait, tally.admitted.Load(), tally.limited.Load(), tally.noLease.Load(), tally.degraded.Load(), outage,
		time.Duration(tally.worst.Load()).Round(time.Millisecond))
	if tally.admitted.Load() != 20 || tally.limited.Load() != 30 || outage != 0 {
		t.Errorf("admitted %d, refused %d (%d for want of a lease), %d from an outage share; want exactly 20 and 30, none from a share",
			tally.admitted.Load(), tally.limited.Load()+tally.noLease.Load(), tally.noLease.Load(), outage)
	}
}

// TestHungNeedsSilentSockets: a Redis silent for the wait deadline counts
// as hung only on the sockets' word: a request out (the kernel sent it)
// for the deadline, nothing come in since, no reply waiting unread. On a
// starved machine the goroutine that writes a call may not have written
// it yet, and a reply may sit unread for hundreds of milliseconds: that
// Redis is slow, not hung, and its keys keep waiting for their leases
// (exact) instead of taking a share.
func TestHungNeedsSilentSockets(t *testing.T) {
	srv := redistest.Start(t)
	const wait = 50 * time.Millisecond
	l, _ := newTestRedis(t, srv, RedisOptions{Timeout: wait})
	l.heartbeat() // a connection, dialed through the hook
	l.conns.mu.Lock()
	var conn net.Conn
	for k := range l.conns.raw {
		conn = k
	}
	l.conns.mu.Unlock()
	if conn == nil || !l.conns.hooked.Load() {
		t.Fatalf("no connection registered by the dial hook (hooked %v)", l.conns.hooked.Load())
	}
	// No call of the limiter's own in flight (its loop's first heartbeat
	// may be; the next is 2s on).
	for {
		l.sil.mu.Lock()
		idle := l.sil.pending == 0
		l.sil.mu.Unlock()
		if idle {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// The heartbeat (its request and its reply, read to the kernel's
	// jiffy) must predate the call below, which is dated twice the
	// deadline back: a reply read after that counts as Redis
	// answering (it failed 1 run in ~80 when the heartbeat came back late).
	time.Sleep(4 * wait)
	srv.Pause()
	defer srv.Resume()
	// A call asked for twice the deadline ago, its request not out yet
	// (a starved gateway): not hung, look again soon.
	from := time.Now().Add(-2 * wait)
	l.sil.begin(from)
	later := func() time.Time { return time.Now().Add(peekEvery) } // past the cached look
	if now := later(); l.hung(now) {
		t.Fatalf("silent %v with no request out since: taken for hung", now.Sub(from))
	}
	// The request goes out (written behind go-redis's back on an idle
	// connection, as a call would be); Redis is frozen.
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if now := later(); l.hung(now) {
		t.Fatalf("request out for no time: taken for hung")
	}
	time.Sleep(wait + 2*jiffy)
	if now := later(); !l.hung(now) {
		t.Fatalf("request out %v with nothing back: not taken for hung (hung at %v)", wait+2*jiffy, l.hungAt(now).Sub(now))
	}
	// Redis answers into the socket; nobody reads the reply yet.
	srv.Resume()
	deadline := time.Now().Add(5 * time.Second)
	for l.hung(later()) {
		if time.Now().After(deadline) {
			t.Fatal("still hung 5s after Redis answered into the socket")
		}
		time.Sleep(time.Millisecond)
	}
	if now := later(); !l.hungAt(now).IsZero() {
		t.Errorf("a reply came in (unread), yet Redis is silent till %v", l.hungAt(now).Sub(now))
	}
	l.sil.end(time.Now(), callAnswered)
}

// TestSilenceOutcomes: a call that reaches its deadline unanswered keeps
// Redis silent after it ends; a refused connection is no evidence of a
// hung Redis (the breaker handles a dead one at once); an answer, even an
// error reply, ends the silence.
func TestSilenceOutcomes(t *testing.T) {
	srv := redistest.Start(t)
	l, c := newTestRedis(t, srv, RedisOptions{Timeout: 50 * time.Millisecond})
	ctx := context.Background()
	if err := c.Do(ctx, "NOSUCHCOMMAND").Err(); outcome(err) != callAnswered {
		t.Errorf("error reply %v: outcome %d; want answered", err, outcome(err))
	}
	srv.Pause()
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := c.Ping(tctx).Err()
	cancel()
	if outcome(err) != callSilent {
		t.Errorf("ping of a frozen Redis: %v: outcome %d; want silent", err, outcome(err))
	}
	srv.Kill()
	err = c.Ping(ctx).Err()
	if outcome(err) != callFailed {
		t.Errorf("ping of a killed Redis: %v: outcome %d; want failed", err, outcome(err))
	}

	var s silence
	t0 := time.Now()
	s.begin(t0)
	s.end(t0.Add(time.Second), callSilent)
	if from, proven := s.since(); !from.Equal(t0) || !proven {
		t.Errorf("after a call timed out: silent since %v (proven %v); want %v, proven", from, proven, t0)
	}
	s.begin(t0.Add(2 * time.Second)) // two in flight
	s.begin(t0.Add(2 * time.Second))
	s.end(t0.Add(2*time.Second), callFailed)
	if from, _ := s.since(); !from.Equal(t0) {
		t.Errorf("a refused call ended the silence while another was in flight")
	}
	s.end(t0.Add(3*time.Second), callAnswered)
	if from, proven := s.since(); !from.IsZero() || proven {
		t.Errorf("silent after an answer")
	}
	s.begin(t0)
	s.end(t0.Add(time.Second), callSilent)
	s.begin(t0.Add(time.Second))
	s.end(t0.Add(time.Second), callFailed)
	if from, _ := s.since(); !from.IsZero() {
		t.Errorf("silent with nothing in flight after a refused call (Redis is dead, not hung: the breaker's case)")
	}
	if l.hung(time.Now()) {
		t.Errorf("a refused Redis taken for a hung one")
	}
}

// TestLeaseHungWindowEnds: the window of a replica's slice ends while
// Redis is hung (the likeliest way TestReliabilityRedisKilledAndHung met
// an empty slice: its hung phase straddled a minute). The new window is
// one Redis never counted for this replica, so its requests are decided
// on the replica's share of the whole limit, not refused for want of a
// lease. The window's end is brought forward on the replica rather than
// waited for.
func TestLeaseHungWindowEnds(t *testing.T) {
	srv := redistest.Start(t)
	l, c := newTestRedis(t, srv, RedisOptions{}) // the default 250ms wait
	freshWindow(t, c)
	const rpm = 300
	lim := Limits{RPM: rpm}
	var tally hungTally
	for range 10 {
		if d := tally.check(l, "app", lim); !d.Allowed {
			t.Fatalf("check with Redis healthy refused: %+v", d)
		}
	}
	for _, _, f := held(l, "app"); f; _, _, f = held(l, "app") {
		time.Sleep(time.Millisecond)
	}
	srv.Pause()
	defer srv.Resume()
	s := l.state("app")
	s.mu.Lock()
	s.end = time.Now() // the window ends now
	s.mu.Unlock()

	tally = hungTally{}
	stop := make(chan struct{})
	hogs := hogCPU(stop)
	var wg sync.WaitGroup
	begin := time.Now()
	for range 4 {
		wg.Go(func() {
			for time.Since(begin) < 5*time.Second && tally.limited.Load() == 0 {
				for range 10 { // a burst per turn: the hogs leave few turns
					tally.check(l, "app", lim)
				}
				runtime.Gosched()
			}
		})
	}
	wg.Wait()
	close(stop)
	hogs.Wait()
	t.Logf("figure: rpm %d, Redis hung as the window ended: %d admitted in the new window, %d refused as over the share, %d for want of a lease; worst check %v",
		rpm, tally.admitted.Load(), tally.limited.Load(), tally.noLease.Load(), time.Duration(tally.worst.Load()).Round(time.Millisecond))
	if n := tally.noLease.Load(); n != 0 {
		t.Errorf("%d checks refused for want of a lease as the window ended with Redis hung; want 0", n)
	}
	if got := tally.admitted.Load(); got != rpm {
		t.Errorf("admitted %d in the new window with one replica; want its share, the whole limit %d", got, rpm)
	}
}
