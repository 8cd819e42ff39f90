package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/loadtest"
)

// Issue 16.1: a score for a request older than detection.lookback is
// accepted and stored (marked late, listed by lookups) but feeds no
// detection.
func TestAdminScoresLate(t *testing.T) {
	_, addr := startMock(t, loadtest.MockOptions{})
	cfg := strings.Replace(fmt.Sprintf(scoresConfig, addr), "detection: { eval: { scale: [0, 1] } }", "detection: { lookback: 1s, eval: { scale: [0, 1], min_scores: 1 } }", 1)
	tg := startGateway(t, cfg, map[string]string{"ADMIN_TOKEN": adminTok})
	r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("support-bot", ""))
	id := r.header.Get("x-request-id")
	tg.records(t, 1)
	time.Sleep(1100 * time.Millisecond)
	r = do(t, "POST", tg.admin+"/admin/scores", adminTok, `[{"request_id":"`+id+`","name":"faithfulness","value":0.1}]`)
	if r.status != 200 || !strings.Contains(string(r.body), `"accepted":1`) || !strings.Contains(string(r.body), `"late":1`) {
		t.Fatalf("late score = %d %s; want accepted and counted late", r.status, r.body)
	}
	r = do(t, "GET", tg.admin+"/admin/requests/"+id, adminTok, "")
	if !strings.Contains(string(r.body), `"late": true`) {
		t.Errorf("lookup = %s; want the score listed, marked late", r.body)
	}
	if n := tg.incidents.DroppedSignals(); n != 0 || len(tg.incidents.List()) != 0 {
		t.Errorf("a late score reached detection: %d incidents", len(tg.incidents.List()))
	}
}
