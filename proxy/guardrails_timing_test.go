//go:build linux

package proxy

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/loadtest"
	"github.com/cairnhq/cairn/schema"
)

// threadCPU is the CPU time of the calling OS thread (lock it first): the
// checks are timed apart from the gateway's background goroutines.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// guardContent2KB is a longer support answer with the numbers, dots,
// dashes and URLs that wake the masker's pre-scan (an order number,
// prices, dates, a URL) but no personal data: the common case made harder.
var guardContent2KB = strings.Repeat("Your order 12345 from 2026-11-24 shipped on Thursday via the regional carrier; the tracking page at https://shop.example/track/12345 updates once a day. "+
	"Parcels in transit for more than 7 days are treated as lost: you can ask for a refund of $49.99 or a free replacement, whichever you prefer. ", 7)

// BenchmarkGuardrailShare measures what the response-side checks of issue
// 16 (the refusal verdict and PII in the answer) cost against the CPU one
// request takes in the gateway with capture on, in the same run:
//
//	go test ./proxy -run '^$' -bench GuardrailShare -benchtime 20000x -count 6
//
// Per reply size (the mock's short JSON answer; a 2 KB text answer), each
// run sends b.N requests straight to the mock (the client's and the mock's
// CPU), then b.N through the gateway with capture on, and takes the
// difference of the process CPU (rusage user+system: GC and the capture
// writer included) per request: gw-cpu-ns/req. checks-ns/req times the
// refusal check on the answer the gateway returned and the leak check as
// the writer runs it on a sampled record (through the masked response);
// checks-%gw is their share of gw-cpu-ns/req. The budget is 5%.
// (BenchmarkLeaks in ./capture times the unsampled path.)
func BenchmarkGuardrailShare(b *testing.B) {
	b.Run("reply=short", func(b *testing.B) {
		benchmarkGuardrailShare(b, "", `"response_format":{"type":"json_object"},`)
	})
	b.Run("reply=2KB", func(b *testing.B) { benchmarkGuardrailShare(b, guardContent2KB, "") })
}

func benchmarkGuardrailShare(b *testing.B, content, extra string) {
	m := loadtest.NewMock(loadtest.MockOptions{Content: content})
	addr, err := m.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	tg := startGateway(b, fmt.Sprintf(benchConfig, addr), map[string]string{"BENCH_KEY": "bench-key"})
	body := []byte(`{"model":"support-bot","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the refund policy for order 12345 in one sentence."}],` + extra + `"temperature":0.2}`)
	c := &fasthttp.Client{MaxConnsPerHost: 512, ReadTimeout: 5 * time.Second}
	var mu sync.Mutex
	var last []byte
	load := func(target string) time.Duration {
		start := processCPU()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for pb.Next() {
				req.Reset()
				req.SetRequestURI(target)
				req.Header.SetMethod("POST")
				req.Header.Set("Authorization", "Bearer bench-key")
				req.Header.SetContentType("application/json")
				req.SetBodyRaw(body)
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Errorf("%v status %d", err, resp.StatusCode())
					return
				}
			}
			mu.Lock()
			last = append(last[:0], resp.Body()...)
			mu.Unlock()
		})
		// The capture writer's work for these requests counts too.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if a := tg.Capture().Health().Accounting; a.Queued == 0 && a.Sinks["file"].Written+uint64(a.Sinks["file"].Pending) >= a.Admitted {
				break
			}
		}
		return processCPU() - start
	}
	b.ReportAllocs()
	b.ResetTimer()
	direct := load("http://" + addr + "/v1/chat/completions")
	gw := load(tg.api + "/v1/chat/completions")
	b.StopTimer()
	gwPerReq := float64((gw - direct).Nanoseconds()) / float64(b.N)

	refusals := schema.NewRefusals(configs.DefaultRefusalPatterns)
	raw := &capture.RawBodies{RequestBody: body, ResponseBody: last, SystemPrompt: "You are a refund assistant."}
	recent := tg.Capture().Recent(1, func(*capture.Record) bool { return true })
	if len(recent) == 0 || len(recent[0].Response) == 0 {
		b.Fatal("no sampled record to take the masked response from")
	}
	masked := recent[0].Response
	const n = 20000
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	sink := 0
	for range n {
		if refusals.Message(last) {
			sink++
		}
		// As the writer runs it on a sampled record (the default).
		sink += len(tg.masker.LeaksMasked("chat.completions", 200, raw, masked))
	}
	if sink != 0 {
		b.Fatalf("the benchmark answers are neither refusals nor leaks (%d)", sink)
	}
	checks := float64((threadCPU() - start).Nanoseconds()) / n
	b.ReportMetric(gwPerReq, "gw-cpu-ns/req")
	b.ReportMetric(checks, "checks-ns/req")
	b.ReportMetric(100*checks/gwPerReq, "checks-%gw")
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return b
}
