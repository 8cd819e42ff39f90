package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/loadtest"
)

// BenchmarkAdminScores measures POST /admin/scores end to end over
// loopback HTTP: 10,000 scores per call (the most one call takes), each
// joined to a distinct recent request, stored in the score file and fed to
// detection. scores/s is the figure issue 16 asks for (≥ 20,000):
//
//	go test ./proxy -run '^$' -bench AdminScores -benchtime 20x -count 5
func BenchmarkAdminScores(b *testing.B) {
	_, addr := startMock(b, loadtest.MockOptions{})
	tg := startGateway(b, fmt.Sprintf(scoresConfig, addr), map[string]string{"ADMIN_TOKEN": adminTok})
	const n = 10_000
	now := time.Now()
	for i := range n {
		tg.capture.Enqueue(&capture.Record{
			GatewayRequestID: fmt.Sprintf("req_bench%021d", i), ProviderRequestID: fmt.Sprintf("chatcmpl-%d", i),
			ReceivedAt: now, Endpoint: "chat.completions", Route: "support-bot", Cohort: "stable", Provider: "primary",
			Model: "upstream-model", Target: "primary/upstream-model", Status: 200, Outcome: capture.OutcomeOK,
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, _ := tg.capture.Resolve(b.Context(), []string{fmt.Sprintf("req_bench%021d", n-1)})
		if recs[0] != nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("records not in memory")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var body bytes.Buffer
	body.WriteString("[")
	for i := range n {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"request_id":"req_bench%021d","name":"faithfulness","value":0.%03d,"source":"judge-v3"}`, i, i%1000)
	}
	body.WriteString("]")
	payload := body.Bytes()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest("POST", tg.admin+"/admin/scores", bytes.NewReader(payload))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(out, []byte(`"accepted":10000`)) {
			b.Fatalf("POST /admin/scores = %d %s", resp.StatusCode, out[:min(len(out), 300)])
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "scores/s")
}
