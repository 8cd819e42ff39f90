package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"
)

// An XADD whose outcome is unknown (the pipeline timed out or lost its
// connection after the commands may have been sent) may still run: a hung
// Redis (SIGSTOP, a stalled network) executes the queued commands when it
// resumes. Before such a record is added again, the sink looks for it in
// the stream and, if there, keeps that entry's ID so that the retry only
// indexes it (see redisSink.settle). The stream is read with XRANGE from a
// little before the uncertain attempt, in Redis's clock, one page at a
// time, at most redisDedupeScan entries, matching records by gateway
// request ID and then byte for byte; nothing of this runs while writes
// succeed. A single-key read: fine on Redis Cluster.
const (
	// redisDedupeScan bounds the entries read per look-up (other
	// replicas' entries share the window).
	redisDedupeScan = 8192
	redisDedupePage = 256
	// redisDedupeMargin is subtracted from the uncertain attempt's time in
	// Redis's clock: the gateway/Redis clock offset is measured at the
	// look-up (TIME), so this only covers its error and drift.
	redisDedupeMargin = 5 * time.Second
	// redisDedupeMisses is how many look-ups, at least redisSettleWait
	// apart, must miss a record before it is added again: a stalled
	// pipeline that Redis is still working through when the first look-up
	// runs would otherwise be added twice.
	redisDedupeMisses = 2
	redisSettleWait   = 200 * time.Millisecond
)

// errRedisUnsettled: some records of an uncertain attempt are not in the
// stream yet; look again after redisSettleWait before adding them.
var errRedisUnsettled = errors.New("redis capture: outcome of an interrupted write not settled yet")

// uncertainXAdd reports whether an XADD that failed with err may
// nonetheless have been executed by Redis.
func uncertainXAdd(err error) bool {
	if err == nil {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		return false // Redis answered: it ran the command and refused it
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false // never connected: nothing was sent
	}
	return true
}

// settle looks for the uncertain records of batch in the stream. A record
// found gets its entry ID; one missed by redisDedupeMisses look-ups is
// added again; otherwise it waits (errRedisUnsettled).
func (s *redisSink) settle(ctx context.Context, batch []redisItem) error {
	want := map[string][]int{} // gateway request ID -> batch indexes
	var since time.Time
	for i, it := range batch {
		if it.entry != "" || it.sentAt.IsZero() {
			continue
		}
		gid := gjson.GetBytes(it.line, "gateway_request_id").String()
		want[gid] = append(want[gid], i)
		if since.IsZero() || it.sentAt.Before(since) {
			since = it.sentAt
		}
	}
	if len(want) == 0 {
		return nil
	}
	local := time.Now()
	rnow, err := s.c.Time(ctx).Result()
	if err != nil {
		return fmt.Errorf("redis time: %w", err)
	}
	// The offset is taken after TIME answered: local precedes it by at
	// most one round trip, which only widens the window.
	from := since.Add(rnow.Sub(local)).Add(-redisDedupeMargin)
	start := strconv.FormatInt(max(from.UnixMilli(), 0), 10)
	left, scanned, multi := 0, 0, false
	for _, ix := range want {
		left += len(ix)
		for _, i := range ix {
			multi = multi || batch[i].sends > 1
		}
	}
	complete := false // read to the end of the stream
	for scanned < redisDedupeScan && (left > 0 || multi) {
		msgs, err := s.c.XRangeN(ctx, RedisStream, start, "+", redisDedupePage).Result()
		if err != nil {
			return fmt.Errorf("redis capture look-up: %w", err)
		}
		scanned += len(msgs)
		var extra []string
		for _, m := range msgs {
			v, _ := m.Values["r"].(string)
			for _, i := range want[gjson.Get(v, "gateway_request_id").String()] {
				if v != string(batch[i].line) {
					continue
				}
				switch e := batch[i].entry; {
				case e == "":
					batch[i].entry = m.ID
					left--
				case e != m.ID:
					extra = append(extra, m.ID) // two interrupted attempts both ran
				}
				break
			}
		}
		if len(extra) > 0 {
			if err := s.c.XDel(ctx, RedisStream, extra...).Err(); err != nil {
				return fmt.Errorf("redis capture dedupe: %w", err)
			}
			s.metrics.redisDupRemoved.Add(uint64(len(extra)))
		}
		if len(msgs) < redisDedupePage {
			complete = true
			break
		}
		start = nextStreamID(msgs[len(msgs)-1].ID)
	}
	waiting := false
	for _, ix := range want {
		for _, i := range ix {
			it := &batch[i]
			if it.entry != "" {
				it.sentAt, it.sends, it.misses = time.Time{}, 0, 0
				continue
			}
			if it.misses++; it.misses < redisDedupeMisses {
				waiting = true
				continue
			}
			if !complete {
				// Not found within the bound: added again, and may now be
				// in the stream twice.
				s.metrics.redisUnverified.Add(1)
			}
			it.sentAt, it.sends, it.misses = time.Time{}, 0, 0
		}
	}
	if waiting {
		return errRedisUnsettled
	}
	return nil
}

// nextStreamID returns the smallest stream ID after id ("ms-seq").
func nextStreamID(id string) string {
	ms, seq, ok := strings.Cut(id, "-")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		return id
	}
	if n == ^uint64(0) {
		m, _ := strconv.ParseUint(ms, 10, 64)
		return strconv.FormatUint(m+1, 10) + "-0"
	}
	return ms + "-" + strconv.FormatUint(n+1, 10)
}
