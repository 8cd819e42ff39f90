package capture

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// proseBlock is ~1.6 KB of the text long requests carry (a report pasted
// into a chat, a support thread): mostly prose, with amounts, dates,
// percentages, an email, a phone number, an en dash and a quoted word.
// typicalMessage, by contrast, repeats a number-dense sentence.
const proseBlock = "The quarterly report covers revenue, retention and support volume across our three regions. " +
	"Revenue grew 12% year over year to $4.2M, driven mostly by the enterprise tier; churn fell from 3.1% to 2.4% " +
	"after the onboarding changes we shipped in March. The \"self-serve\" plan remained flat, which we expected, " +
	"because the pricing page was redesigned late in the quarter and most of its traffic arrived in the last two weeks.\n\n" +
	"If you have questions about these figures, contact Maria Lopez at maria.lopez@acme-corp.com or call " +
	"+1 (415) 555-0132 during business hours (9:00–17:00 PT). She owns the finance model and can share the " +
	"underlying spreadsheet with anyone on the leadership team.\n\n" +
	"Support: the median first response time was 3 hours 12 minutes, down from 5 hours; 87 percent of tickets " +
	"were resolved within two business days. Customers mostly asked about billing, password resets and the new " +
	"export feature, and a handful reported that scheduled exports arrived late on weekends, which the platform " +
	"team traced to a misconfigured cron job and fixed on 14 November.\n\n" +
	"Action items: finance will reconcile invoice 2026-0412 by Friday; the platform team will publish the incident " +
	"review for the outage; and the support lead will draft a new macro for refund requests, so that agents stop " +
	"writing the same explanation by hand. Thanks, everyone, for a calm and productive quarter.\n\n"

// proseText is proseBlock repeated to n bytes.
func proseText(n int) string {
	return strings.Repeat(proseBlock, n/len(proseBlock)+1)[:n]
}

// BenchmarkScanFeaturesProse is BenchmarkScanFeatures on prose.
func BenchmarkScanFeaturesProse(b *testing.B) {
	s := []byte(proseText(64 << 10))
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		_ = scanFeatures(s)
	}
}

// BenchmarkWriterPipelineProse is BenchmarkWriterPipeline with prose
// bodies (proseBlock) in the request, a 1 KB answer, and the request
// marked valid as the proxy marks a body it parsed (RawBodies.RequestValid):
//
//	go test ./capture -run '^$' -bench 'WriterPipeline' -benchtime 2s -count 5
func BenchmarkWriterPipelineProse(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("body=%dKB", size>>10), func(b *testing.B) { benchmarkWriterPipelineProse(b, size) })
	}
}

func benchmarkWriterPipelineProse(b *testing.B, size int) {
	w, err := NewWriter(WriterOptions{DataDir: b.TempDir(), Masker: testMasker(b),
		Capture: configs.Capture{MaxFileBytes: 1 << 30, MaxTotalBytes: -1}})
	if err != nil {
		b.Fatal(err)
	}
	w.Start()
	body := []byte(`{"model":"support-bot","messages":[{"role":"user","content":` + string(appendJSONString(nil, proseText(size))) + `}]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	start := time.Now()
	cpu := processCPU()
	i := 0
	for b.Loop() {
		r := testRecord(i)
		r.Raw.RequestBody, r.Raw.RequestValid = body, true
		r.Raw.ResponseBody = typicalCompletion
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

// BenchmarkScanFeaturesWords is the feature scan over the padded plain
// words of proxy.BenchmarkHotPathBody.
func BenchmarkScanFeaturesWords(b *testing.B) {
	const words = "the parcel left the depot and is on its way to the customer who asked about delivery options and refunds "
	s := []byte(strings.Repeat(words, (64<<10)/len(words)))
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		_ = scanFeatures(s)
	}
}

// BenchmarkSecretsRedactProse is the secret scan over 64 KB of prose (a
// masked request) with a provider key and a gateway key configured.
func BenchmarkSecretsRedactProse(b *testing.B) {
	s := NewSecrets("sk-proj-0123456789abcdef0123456789abcdef", "gw-key-0123456789abcdef")
	body := appendJSONString(nil, proseText(64<<10))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if out := s.Redact(body); len(out) != len(body) {
			b.Fatal("changed")
		}
	}
}
