package proxy

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkHotPath measures one non-streaming chat request through a bare
// fasthttp hop and through Cairn (capture on with every body sampled, a
// json_object request; cairn+schema adds a route JSON Schema contract) in
// front of an
// upstream and a client that allocate nothing, so allocs/op is what the
// proxy allocates (Cairn's includes its capture writer's work for the
// record). Compare the two in one run:
//
//	go test ./proxy -run '^$' -bench HotPath -benchtime 20000x -count 6 | tee new.txt
func BenchmarkHotPath(b *testing.B) {
	for _, mode := range []string{"hop", "cairn", "cairn+schema"} {
		b.Run(mode, func(b *testing.B) {
			url, _ := hotTarget(b, mode)
			runHot(b, url, hotBody, 8)
		})
	}
}

// BenchmarkHotPathBody is BenchmarkHotPath with large request bodies (the
// user message padded with plain words), for CPU per KB (issue 15):
//
//	go test ./proxy -run '^$' -bench HotPathBody -benchtime 2000x -count 6
func BenchmarkHotPathBody(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		body := paddedHotBody(size)
		for _, mode := range []string{"hop", "cairn+schema"} {
			b.Run(fmt.Sprintf("%s/req=%dKB", mode, size>>10), func(b *testing.B) {
				url, _ := hotTarget(b, mode)
				b.SetBytes(int64(len(body)))
				runHot(b, url, body, 4)
			})
		}
	}
}

// BenchmarkHotPathReply is BenchmarkHotPath with a 256 KB reply (the
// answer padded with plain words), for CPU per KB of response (issue 15):
//
//	go test ./proxy -run '^$' -bench HotPathReply -benchtime 2000x -count 6
func BenchmarkHotPathReply(b *testing.B) {
	reply := paddedHotReply(256 << 10)
	for _, mode := range []string{"hop", "cairn+schema"} {
		b.Run(mode+"/resp=256KB", func(b *testing.B) {
			url, _ := hotTargetReply(b, mode, reply)
			b.SetBytes(int64(len(reply)))
			runHot(b, url, hotBody, 4)
		})
	}
}

// runHot posts body to url from parallelism goroutines per CPU, each with
// its own allocation-free client, reporting allocations and the process's
// CPU time per request (cpu-µs/op: user + system, client and upstream
// included, so compare modes, not absolute values). On a shared machine
// cpu-µs/op is steadier than ns/op, which counts waiting for the CPU.
func runHot(b *testing.B, url string, body []byte, parallelism int) {
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := newHotClient(url)
		defer c.release()
		for pb.Next() {
			if err := c.post(body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// paddedHotReply is hotReply with the answer padded with plain words to
// about n bytes.
func paddedHotReply(n int) []byte {
	const words = "the parcel left the depot and is on its way to the customer who asked about delivery options and refunds "
	pad := strings.Repeat(words, n/len(words)+1)[:max(n-len(hotReply), 0)]
	return bytes.Replace(hotReply, []byte(`Your parcel is delayed`), []byte(pad+`Your parcel is delayed`), 1)
}

// paddedHotBody is hotBody with one more user message of plain words, n
// bytes in all (about).
func paddedHotBody(n int) []byte {
	const words = "the parcel left the depot and is on its way to the customer who asked about delivery options and refunds "
	pad := strings.Repeat(words, n/len(words)+1)[:max(n-len(hotBody)-40, 0)]
	const at = `"messages":[`
	i := bytes.Index(hotBody, []byte(at)) + len(at)
	out := append([]byte(nil), hotBody[:i]...)
	out = append(out, `{"role":"user","content":"`...)
	out = append(out, pad...)
	out = append(out, `"},`...)
	return append(out, hotBody[i:]...)
}
