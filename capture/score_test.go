package capture

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/redistest"
)

// Issue 16.1: scores are joined to their request by any of its three IDs
// (from memory, Redis or the files after a restart), stored as their own
// record type beside the records, and listed by a lookup of the request.
func TestScoresResolveStoreAndList(t *testing.T) {
	rs := redistest.Start(t)
	rc := newRedisClient(t, rs)
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Redis: rc})
	w.Start()
	for i := 1; i <= 3; i++ {
		r := testRecord(i)
		r.GatewayRequestID, r.Target, r.PromptVersion, r.Release = gwID(i), "openai/gpt-4o-mini", "v18", "2026.11.3"
		w.Enqueue(r)
	}
	waitFor(t, func() bool { return w.mem.lookup(IDGateway, gwID(3)) != nil })

	ids := []string{gwID(1), "req_prov_0002", "client-0003", "nope", ""}
	recs, err := w.Resolve(context.Background(), ids)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	for i, want := range []string{gwID(1), gwID(2), gwID(3), "", ""} {
		got := ""
		if recs[i] != nil {
			got = recs[i].GatewayRequestID
		}
		if got != want {
			t.Errorf("Resolve(%q) = %q; want %q", ids[i], got, want)
		}
	}
	now := time.Date(2026, 11, 24, 10, 5, 0, 0, time.UTC)
	scores := []Score{
		JoinScore(recs[0], "faithfulness", 0.82, "judge-v3", time.Time{}, now),
		JoinScore(recs[0], "relevance", 0.5, "", now.Add(-time.Minute), now),
		JoinScore(recs[1], "faithfulness", 0.4, "judge-v3", time.Time{}, now),
	}
	if err := w.AddScores(context.Background(), scores); err != nil {
		t.Fatalf("AddScores: %v", err)
	}
	if s := scores[0]; s.Route != "support-bot" || s.Cohort != "canary" || s.Target != "openai/gpt-4o-mini" ||
		s.PromptVersion != "v18" || s.Release != "2026.11.3" || s.Type != RecordTypeScore {
		t.Errorf("joined score = %+v", s)
	}
	m, err := w.Find(context.Background(), "req_prov_0001")
	if err != nil || len(m.Scores) != 2 || m.Scores[0].Name != "faithfulness" || m.Scores[1].Value != 0.5 {
		t.Fatalf("Find(provider ID) scores = %+v, %v; want the two scores of request 1", m.Scores, err)
	}
	b, _ := json.Marshal(m.Body())
	if !strings.Contains(string(b), `"scores":[{"type":"score","request_id":"`+gwID(1)+`","name":"faithfulness","value":0.82`) ||
		!strings.Contains(string(b), `"gateway_request_id":"`+gwID(1)+`"`) {
		t.Errorf("Body() = %s; want the record with its scores", b)
	}
	text := metricsText(w.metrics)
	for _, want := range []string{
		`cairn_scores_received_total{route="support-bot",cohort="canary",target="openai/gpt-4o-mini"} 3`,
		`cairn_score_mean{route="support-bot",cohort="canary",target="openai/gpt-4o-mini"} 0.573333333333333`,
		`cairn_scores_lost_total{sink="redis"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "faithfulness") {
		t.Errorf("metrics carry a score name (client-chosen): %s", text)
	}
	// Redis holds them for other replicas.
	if n, err := rc.LLen(context.Background(), redisScorePrefix+gwID(1)).Result(); err != nil || n != 2 {
		t.Errorf("redis score list = %d, %v; want 2", n, err)
	}
	closeWriter(t, w)

	// After a restart: the files resolve every namespace and list the
	// scores, without Redis and without memory.
	w2 := newTestWriter(t, WriterOptions{DataDir: dir})
	w2.Start()
	recs, err = w2.Resolve(context.Background(), []string{"client-0002", gwID(3), "req_prov_0001", "nope"})
	if err != nil || recs[0] == nil || recs[0].GatewayRequestID != gwID(2) || recs[1] == nil || recs[1].GatewayRequestID != gwID(3) ||
		recs[2] == nil || recs[2].GatewayRequestID != gwID(1) || recs[3] != nil {
		t.Errorf("Resolve from files = %v, %v", recs, err)
	}
	m, err = FindAllInDir(dir, gwID(2))
	if err != nil || len(m.Scores) != 1 || m.Scores[0].Value != 0.4 {
		t.Errorf("FindAllInDir scores = %+v, %v", m.Scores, err)
	}
	if got := w2.ScoresOf(context.Background(), gwID(1)); len(got) != 2 {
		t.Errorf("ScoresOf after restart = %d scores; want 2", len(got))
	}
	// The request files still hold exactly the records.
	if recs := readRecords(t, dir); len(recs) != 3 {
		t.Errorf("capture files hold %d records; want 3 (scores live in their own files)", len(recs))
	}
}

// Issue 16.3: a priced model's records carry cost_usd; an unpriced one
// null (not 0) and one warning per model; the cost is counted on /metrics.
func TestRecordCostUSD(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir})
	cached := 1.0
	w.SetPricing(NewPricing(&configs.Config{Pricing: []configs.Price{{Provider: "openai", Model: "gpt-4o-mini", Input: 2, CachedInput: &cached, Output: 10}}}))
	w.Start()
	r := testRecord(1)
	r.Target = "openai/gpt-4o-mini"
	r.Usage = Usage{PromptTokens: 1000, CachedTokens: 400, CompletionTokens: 100, TotalTokens: 1100}
	w.Enqueue(r)
	for i := 2; i <= 3; i++ {
		u := testRecord(i)
		u.Model, u.Target = "gpt-5", "openai/gpt-5"
		w.Enqueue(u)
	}
	closeWriter(t, w)
	recs := readRecords(t, dir)
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	want := (600*2.0 + 400*1.0 + 100*10.0) / 1e6
	if c := recs[0].CostUSD; c == nil || *c != want {
		t.Errorf("cost_usd = %v; want %v", c, want)
	}
	if recs[1].CostUSD != nil {
		t.Errorf("unpriced cost_usd = %v; want null", *recs[1].CostUSD)
	}
	line, _ := recs[1].MarshalJSON()
	if !strings.Contains(string(line), `"cost_usd":null`) {
		t.Errorf("unpriced record = %s; want cost_usd null", line)
	}
	text := metricsText(w.metrics)
	if !strings.Contains(text, `cairn_cost_usd_total{route="support-bot",cohort="canary",target="openai/gpt-4o-mini"} 0.0026`) ||
		!strings.Contains(text, `cairn_requests_unpriced_total{route="support-bot",cohort="canary",target="openai/gpt-5"} 2`) {
		t.Errorf("metrics = %s", text)
	}
	if len(w.unpriced) != 1 {
		t.Errorf("warned about %d models; want 1", len(w.unpriced))
	}
}
