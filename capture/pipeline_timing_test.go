package capture

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// BenchmarkWriterPipeline pushes records through the whole writer
// (Enqueue, parallel masking and encoding, the in-order committer, the
// file sink) with realistic prose bodies of 1 KB to 1 MB, and reports the
// records whose bodies were dropped for the byte budget (bodies-lost/op,
// want 0) and the writer's sustained rate (records/s). Enqueue here is as
// fast as the benchmark loop, far above any request rate, and b.N records
// are paced to the writer's own rate by the queue: the budget only drops
// bodies when the writer falls behind.
//
//	go test -run '^$' -bench 'WriterPipeline' -benchtime 2s -count 5 ./capture
func BenchmarkWriterPipeline(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("body=%dKB", size>>10), func(b *testing.B) { benchmarkWriterPipeline(b, size) })
	}
}

func benchmarkWriterPipeline(b *testing.B, size int) {
	w, err := NewWriter(WriterOptions{DataDir: b.TempDir(), Masker: testMasker(b),
		Capture: configs.Capture{MaxFileBytes: 1 << 30, MaxTotalBytes: -1}})
	if err != nil {
		b.Fatal(err)
	}
	w.Start()
	msg := strings.Repeat(typicalMessage, size/len(typicalMessage)+1)[:size]
	body := []byte(`{"model":"support-bot","messages":[{"role":"user","content":` + string(appendJSONString(nil, msg)) + `}]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	start := time.Now()
	cpu := processCPU()
	i := 0
	for b.Loop() {
		r := testRecord(i)
		r.Raw.RequestBody = body
		r.Raw.ResponseBody = typicalCompletion
		// Pace at the budget instead of dropping: a request path faster
		// than the writer is what the budget is for, not what this
		// measures. The wait is on the writer's own progress.
		for w.qBytes.Load()+int64(len(body)+len(typicalCompletion)) > w.maxQBytes {
			time.Sleep(50 * time.Microsecond)
		}
		w.Enqueue(r)
		i++
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	reportCPU(b, cpu)
	b.ReportMetric(float64(i)/el.Seconds(), "records/s")
	b.ReportMetric(float64(w.metrics.BodiesDropped(BodiesQueueBytes))/float64(i), "bodies-lost/op")
}
