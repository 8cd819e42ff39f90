package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/jsonscan"
)

// Issue 16.1: POST /admin/scores takes online eval scores, a JSON array or
// NDJSON of {"request_id", "name", "value", "source"?, "at"?}, validates
// each on its own, joins it to its request's record and stores it; scores
// of requests within detection.lookback also feed the eval_drift signal.
const (
	// maxScoresPerCall bounds one call; more gets 413.
	maxScoresPerCall = 10_000
	// maxAdminBodyBytes bounds an admin request body: 10,000 scores with
	// long IDs and sources fit.
	maxAdminBodyBytes = 8 << 20
	// maxScoreRequestID bounds a score's request_id (the IDs lookup takes).
	maxScoreRequestID = 256
	// scoreResolveTimeout bounds finding the scored requests of one call
	// (memory, Redis, then one pass over the capture files).
	scoreResolveTimeout = 10 * time.Second
)

// scoreRejection is one refused item of a POST /admin/scores body. Error
// never quotes the item's values (they may carry personal data).
type scoreRejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

type scoresResult struct {
	Accepted int              `json:"accepted"`
	Rejected []scoreRejection `json:"rejected"`
	// Late counts accepted scores of requests older than
	// detection.lookback: stored, not fed to detection.
	Late int `json:"late,omitempty"`
}

// scoreItem is one parsed item before its request is resolved.
type scoreItem struct {
	index  int
	id     string
	name   string
	value  float64
	source string
	at     time.Time
}

func (g *Gateway) postScores(ctx *fasthttp.RequestCtx) {
	items, status, msg := splitScoreBody(ctx.PostBody())
	if status != 0 {
		code := "invalid_scores"
		if status == fasthttp.StatusRequestEntityTooLarge {
			code = "too_many_scores"
		}
		adminErrorCode(ctx, status, msg, code)
		return
	}
	cfg := g.live.Load().Config()
	ev := cfg.Detection.Eval
	now := time.Now()
	res := scoresResult{Rejected: []scoreRejection{}}
	valid := make([]scoreItem, 0, len(items))
	for i, raw := range items {
		it, err := parseScore(raw, ev.Scale, now)
		if err != "" {
			res.Rejected = append(res.Rejected, scoreRejection{i, err})
			continue
		}
		it.index = i
		valid = append(valid, it)
	}
	ids := make([]string, len(valid))
	for i := range valid {
		ids[i] = valid[i].id
	}
	rctx, cancel := context.WithTimeout(g.baseCtx, scoreResolveTimeout)
	recs, rerr := g.capture.Resolve(rctx, ids)
	cancel()
	scores := make([]capture.Score, 0, len(valid))
	lookback := cfg.Detection.Lookback.D()
	for i := range valid {
		it := &valid[i]
		r := recs[i]
		if r == nil {
			msg := "request_id: no request with that ID"
			if rerr != nil {
				msg += " (the lookup was incomplete: " + errText(rerr) + ")"
			}
			res.Rejected = append(res.Rejected, scoreRejection{it.index, msg})
			continue
		}
		sc := capture.JoinScore(r, it.name, it.value, it.source, it.at, now)
		if lookback > 0 && now.Sub(r.ReceivedAt) > lookback {
			sc.Late = true
			res.Late++
		}
		scores = append(scores, sc)
	}
	if err := g.capture.AddScores(g.baseCtx, scores); err != nil {
		g.log.Error("scores not stored", "scores", len(scores), "err", err)
		adminErrorCode(ctx, fasthttp.StatusServiceUnavailable, "scores not stored: the capture directory refused the write; nothing of this call was accepted, retry", "scores_not_stored")
		return
	}
	if g.incidents != nil && !cfg.Detection.Disabled {
		g.incidents.ObserveScores(scores)
	}
	res.Accepted = len(scores)
	slicesSortRejections(res.Rejected)
	writeJSONCompact(ctx, fasthttp.StatusOK, res)
}

// splitScoreBody returns the raw items of a JSON array or NDJSON body, or
// an HTTP status and message for a body that is neither or holds more than
// maxScoresPerCall items.
func splitScoreBody(body []byte) (items [][]byte, status int, msg string) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, fasthttp.StatusBadRequest, "body must be a JSON array of scores or NDJSON (one score object per line)"
	}
	switch b[0] {
	case '[':
		if b[len(b)-1] != ']' {
			return nil, fasthttp.StatusBadRequest, "body is not JSON: an array that does not end"
		}
		n := 0
		tooMany := false
		// gjson is lenient about NaN and Infinity, which JSON has not:
		// such an item is rejected on its own rather than failing the call.
		gjson.ParseBytes(b).ForEach(func(_, v gjson.Result) bool {
			n++
			if n > maxScoresPerCall {
				tooMany = true
				return false
			}
			items = append(items, []byte(v.Raw))
			return true
		})
		if tooMany {
			return nil, fasthttp.StatusRequestEntityTooLarge, "at most " + strconv.Itoa(maxScoresPerCall) + " scores per call"
		}
		if !jsonscan.Valid(b) && !anyObject(items) {
			return nil, fasthttp.StatusBadRequest, "body is not JSON"
		}
	case '{':
		if jsonscan.Valid(b) && gjson.ParseBytes(b).IsObject() && len(gjson.ParseBytes(b).Raw) == len(b) {
			// One score object, possibly spread over lines.
			return [][]byte{b}, 0, ""
		}
		for len(b) > 0 {
			line := b
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				line, b = b[:i], b[i+1:]
			} else {
				b = nil
			}
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			if len(items) == maxScoresPerCall {
				return nil, fasthttp.StatusRequestEntityTooLarge, "at most " + strconv.Itoa(maxScoresPerCall) + " scores per call"
			}
			items = append(items, line)
		}
		if !anyObject(items) {
			return nil, fasthttp.StatusBadRequest, "body is not JSON"
		}
	default:
		return nil, fasthttp.StatusBadRequest, "body is not JSON: want a JSON array of scores or NDJSON (one score object per line)"
	}
	return items, 0, ""
}

// anyObject reports whether some item parses as a JSON object (leniently).
func anyObject(items [][]byte) bool {
	for _, it := range items {
		if len(it) > 1 && it[0] == '{' && it[len(it)-1] == '}' && gjson.ParseBytes(it).IsObject() {
			return true
		}
	}
	return false
}

// parseScore validates one item; err says what is wrong with it.
func parseScore(raw []byte, scale []float64, now time.Time) (it scoreItem, err string) {
	if len(raw) == 0 || raw[0] != '{' {
		return it, "not a JSON object"
	}
	if !jsonscan.Valid(raw) {
		// The one lenient case worth a precise answer: NaN or Infinity.
		if v := gjson.GetBytes(raw, "value"); v.Type == gjson.Number && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0)) {
			return it, "value: not a finite number"
		}
		return it, "not valid JSON"
	}
	f := gjson.GetManyBytes(raw, "request_id", "name", "value", "source", "at")
	switch {
	case f[0].Type != gjson.String || f[0].Str == "":
		return it, "request_id: required, a string"
	case len(f[0].Str) > maxScoreRequestID:
		return it, "request_id: longer than " + strconv.Itoa(maxScoreRequestID) + " bytes"
	}
	it.id = f[0].Str
	switch {
	case f[1].Type != gjson.String || f[1].Str == "":
		return it, "name: required, a non-empty string"
	case len(f[1].Str) > configs.MaxScoreName:
		return it, "name: longer than " + strconv.Itoa(configs.MaxScoreName) + " bytes"
	case !configs.ValidScoreName(f[1].Str):
		return it, "name: only letters, digits and _ . : - / are allowed"
	}
	it.name = f[1].Str
	switch v := f[2]; {
	case !v.Exists():
		return it, "value: required"
	case v.Type == gjson.String:
		return it, "value: must be a number, got a string"
	case v.Type != gjson.Number:
		return it, "value: must be a number"
	case math.IsNaN(v.Num) || math.IsInf(v.Num, 0):
		return it, "value: not a finite number"
	case len(scale) == 2 && (v.Num < scale[0] || v.Num > scale[1]):
		return it, "value: outside the scale [" + strconv.FormatFloat(scale[0], 'g', -1, 64) + ", " + strconv.FormatFloat(scale[1], 'g', -1, 64) + "] (detection.eval.scale)"
	}
	it.value = f[2].Num
	if s := f[3]; s.Exists() && s.Type != gjson.Null {
		if s.Type != gjson.String || !configs.ValidScoreName(s.Str) {
			return it, "source: 1–64 letters, digits or _ . : - /"
		}
		it.source = s.Str
	}
	if a := f[4]; a.Exists() && a.Type != gjson.Null {
		t, perr := time.Parse(time.RFC3339Nano, a.Str)
		if a.Type != gjson.String || perr != nil {
			return it, "at: not an RFC 3339 time"
		}
		if t.After(now.Add(5 * time.Minute)) {
			return it, "at: in the future"
		}
		it.at = t
	}
	return it, ""
}

// slicesSortRejections puts rejections in body order: items are rejected
// in two passes (shape, then lookup).
func slicesSortRejections(r []scoreRejection) {
	slices.SortFunc(r, func(a, b scoreRejection) int { return a.Index - b.Index })
}

func errText(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return "a sink did not answer"
}

func writeJSONCompact(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		adminError(ctx, fasthttp.StatusInternalServerError, "encode: "+err.Error())
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

func adminErrorCode(ctx *fasthttp.RequestCtx, status int, msg, code string) {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
	ctx.SetBody(b)
}

// lookupRecent returns the record of a gateway request ID from capture's
// memory (the lowest-scored samples of an eval_drift incident), or nil.
func (g *Gateway) lookupRecent(id string) *capture.Record {
	ctx, cancel := context.WithTimeout(g.baseCtx, time.Second)
	defer cancel()
	r, err := g.capture.Lookup(ctx, id)
	if err != nil {
		return nil
	}
	return r
}
