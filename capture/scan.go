package capture

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tidwall/gjson"
)

// Period is a time range of a route's records: [From, To) by ReceivedAt.
type Period struct {
	Route    string
	From, To time.Time
}

func (s Period) holds(r *Record) bool {
	return r.Route == s.Route && !r.ReceivedAt.Before(s.From) && r.ReceivedAt.Before(s.To)
}

// Between calls fn for every record of sp.Route received in sp's range
// that this replica holds: its memory ring, then its capture files (a
// record in both is passed once). Records come without their bodies
// (Request, Response and Headers are empty) and are read-only; the order
// is not by time. fn returning false stops the walk. Records other
// replicas wrote only to Redis are not seen (the incident charts of a
// fleet show the replica's own traffic).
func (w *Writer) Between(ctx context.Context, sp Period, fn func(*Record) bool) error {
	seen := map[string]struct{}{}
	stopped := false
	for _, r := range w.mem.recent(len(w.mem.ring), sp.holds) {
		seen[r.GatewayRequestID] = struct{}{}
		lite := *r
		lite.Request, lite.Response, lite.Headers, lite.Raw = nil, nil, nil, nil
		if !fn(&lite) {
			stopped = true
			break
		}
	}
	if stopped {
		return nil
	}
	torn, err := betweenFiles(ctx, filepath.Join(w.opt.DataDir, captureSubdir), sp, seen, fn)
	w.metrics.tornLines.Add(uint64(torn))
	return err
}

// BetweenInDir is Between over the capture files under dataDir alone (the
// CLI, with the gateway down).
func BetweenInDir(ctx context.Context, dataDir string, sp Period, fn func(*Record) bool) error {
	_, err := betweenFiles(ctx, filepath.Join(dataDir, captureSubdir), sp, nil, fn)
	return err
}

// decodeLite reads the fields of a record line that judge it (IDs, route,
// cohort, target, time, outcome, status, attempts' statuses, latency,
// usage, cost, contract verdict, guardrails) in one pass with gjson,
// leaving out the bodies and headers: a chart reads thousands of lines.
// It reports false for a line that is not a JSON object.
func decodeLite(line []byte, r *Record) bool {
	if !gjson.ValidBytes(line) {
		return false
	}
	root := gjson.ParseBytes(line)
	if !root.IsObject() {
		return false
	}
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "gateway_request_id":
			r.GatewayRequestID = v.Str
		case "provider_request_id":
			r.ProviderRequestID = v.Str
		case "received_at":
			r.ReceivedAt, _ = time.Parse(time.RFC3339Nano, v.Str)
		case "route":
			r.Route = v.Str
		case "cohort":
			r.Cohort = v.Str
		case "provider":
			r.Provider = v.Str
		case "model":
			r.Model = v.Str
		case "target":
			r.Target = v.Str
		case "status":
			r.Status = int(v.Int())
		case "outcome":
			r.Outcome = v.Str
		case "latency_ms":
			r.LatencyMS = v.Float()
		case "usage":
			r.Usage = Usage{PromptTokens: int(v.Get("prompt_tokens").Int()), CompletionTokens: int(v.Get("completion_tokens").Int()),
				TotalTokens: int(v.Get("total_tokens").Int()), CachedTokens: int(v.Get("cached_tokens").Int())}
		case "cost_usd":
			if v.Type == gjson.Number {
				c := v.Float()
				r.CostUSD = &c
			}
		case "contract":
			r.Contract.Verdict = v.Get("verdict").Str
		case "attempts":
			v.ForEach(func(_, a gjson.Result) bool {
				r.Attempts = append(r.Attempts, Attempt{Status: int(a.Get("status").Int()), Target: a.Get("target").Str, Cohort: a.Get("cohort").Str})
				return true
			})
		case "refusal":
			r.Refusal = v.Bool()
		case "pii_leak":
			v.ForEach(func(_, d gjson.Result) bool {
				r.PIILeak = append(r.PIILeak, d.Str)
				return true
			})
		}
		return true
	})
	return true
}

// errStop ends a walk early.
var errStop = errors.New("stop")

// betweenFiles reads the capture files of the days sp touches. A line is
// decoded only when it names the route and its received_at is in range.
func betweenFiles(ctx context.Context, dir string, sp Period, seen map[string]struct{}, fn func(*Record) bool) (torn int, err error) {
	names, err := listFiles(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list capture files: %w", err)
	}
	// Files are named by the UTC day they were opened; a file of the day
	// before From may hold records up to its rotation.
	first := sp.From.UTC().AddDate(0, 0, -1).Format(dayLayout)
	last := sp.To.UTC().Format(dayLayout)
	needle := append(append([]byte(`"route":`), appendJSONString(nil, sp.Route)...), ',')
	for _, path := range names {
		day, _, _ := parseFileName(filepath.Base(path))
		if day < first || day > last {
			continue
		}
		n, err := betweenFile(ctx, path, sp, needle, seen, fn)
		torn += n
		if errors.Is(err, errStop) {
			return torn, nil
		}
		if err != nil {
			return torn, err
		}
	}
	return torn, nil
}

func betweenFile(ctx context.Context, path string, sp Period, needle []byte, seen map[string]struct{}, fn func(*Record) bool) (torn int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // pruned meanwhile
	}
	if err != nil {
		return 0, fmt.Errorf("open capture file: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return torn, fmt.Errorf("read capture files: %w", ctx.Err())
		}
		line, rerr := readLine(br)
		if rerr == io.EOF && len(line) > 0 {
			torn++ // a final line without its newline: a crash mid-write
		} else if len(line) > 0 && bytes.Contains(line, needle) {
			at, perr := time.Parse(time.RFC3339Nano, gjson.GetBytes(line, "received_at").Str)
			if perr == nil && !at.Before(sp.From) && at.Before(sp.To) {
				var r Record
				if !decodeLite(line, &r) {
					torn++
				} else if _, dup := seen[r.GatewayRequestID]; !dup && r.Route == sp.Route {
					if !fn(&r) {
						return torn, errStop
					}
				}
			}
		}
		if rerr == io.EOF {
			return torn, nil
		}
		if rerr != nil {
			return torn, fmt.Errorf("read capture file: %w", rerr)
		}
	}
}
