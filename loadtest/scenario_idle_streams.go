package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// runIdleStreams holds N streams open and idle through Cairn (the mock
// sends its first chunk at once, then one every 5 s) and reports what an
// idle stream costs the gateway: RSS and goroutines per stream, read with
// all N open (issue 15: ≤ 40 KB and one goroutine per idle stream). The
// figure is (RSS with the streams open - RSS before) / N, after a warm-up
// of 50 streams so that pools and the runtime's own structures exist.
//
//	cairn loadtest idle-streams --streams 1000
func runIdleStreams(e *runEnv) error {
	n := pick(e, 1000, 100)
	if e.o.Streams > 0 {
		n = e.o.Streams
	}
	interval := 5 * time.Second
	r := e.rep
	r.Params["concurrent_streams"] = float64(n)
	r.Params["chunk_interval_ms"] = ms(interval)

	e.progress("starting the mock provider (a chunk every %s) and cairn", interval)
	mockAddr, err := e.startMock(mockSpec{name: "mock", chunkInterval: interval, chunks: 6, prefix: "mock"})
	if err != nil {
		return err
	}
	key, secret := benchKey("bench", 0)
	gw, err := e.startGateway("cairn", configs.Config{
		Release:   "loadtest",
		Providers: []configs.Provider{{Name: "mock", BaseURL: "http://" + mockAddr + "/v1", Timeout: configs.Duration(60 * time.Second), MaxConns: 2*n + 100}},
		Keys:      []configs.Key{key},
		Routes:    []configs.Route{{Name: "bench", Targets: []configs.Target{{Provider: "mock", Model: "mock-model"}}}},
	})
	if err != nil {
		return err
	}
	body := benchBody("bench", "user-idle", true)
	open := func(count int) ([]net.Conn, error) {
		conns := make([]net.Conn, count)
		errs := make([]error, count)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 50)
		for i := range count {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				conns[i], errs[i] = openIdleStream(e.ctx, gw.api, secret, body)
			}()
		}
		wg.Wait()
		var out []net.Conn
		var first error
		for i, c := range conns {
			if c != nil {
				out = append(out, c)
			} else if first == nil {
				first = errs[i]
			}
		}
		return out, first
	}
	closeAll := func(cs []net.Conn) {
		for _, c := range cs {
			c.Close()
		}
	}
	warm, err := open(50)
	closeAll(warm)
	if err != nil {
		return fmt.Errorf("warm-up stream: %w", err)
	}
	if !sleepCtx(e.ctx, time.Second) {
		return e.ctx.Err()
	}
	before, err := readProc(gw.child.pid())
	if err != nil {
		return err
	}
	gor0, err := scrapeGauge(e.ctx, gw.admin, "go_goroutines")
	if err != nil {
		return err
	}
	e.progress("opening %d streams", n)
	// Open them in ten steps and chart RSS against the streams open.
	rss := Series{Name: "cairn RSS", Points: []Point{{T: 0, V: mib(before.RSS)}}}
	var conns []net.Conn
	defer func() { closeAll(conns) }()
	for step := range 10 {
		batch, err := open(n*(step+1)/10 - n*step/10)
		conns = append(conns, batch...)
		if err != nil {
			r.note("a stream failed to open: %v", err)
		}
		if s, err := readProc(gw.child.pid()); err == nil {
			rss.Points = append(rss.Points, Point{T: float64(len(conns)), V: mib(s.RSS)})
		}
	}
	r.Charts = append(r.Charts, Chart{Title: "cairn RSS against idle streams open", YLabel: "MiB", XLabel: "streams open", Series: []Series{rss}})
	if !sleepCtx(e.ctx, 500*time.Millisecond) {
		return e.ctx.Err()
	}
	with, err := readProc(gw.child.pid())
	if err != nil {
		return err
	}
	gor1, err := scrapeGauge(e.ctx, gw.admin, "go_goroutines")
	if err != nil {
		return err
	}
	opened := len(conns)
	perStream, gorPerStream := nan(), nan()
	if opened > 0 {
		perStream = float64(with.RSS-before.RSS) / 1024 / float64(opened)
		gorPerStream = (gor1 - gor0) / float64(opened)
	}
	e.progress("%d idle streams: RSS %.1f → %.1f MiB, %.1f KiB and %.2f goroutines per stream", opened, mib(before.RSS), mib(with.RSS), perStream, gorPerStream)
	tab := Table{
		Title: fmt.Sprintf("%d idle SSE streams through cairn (a chunk every %s)", n, interval),
		Columns: []Column{
			{Key: "streams", Title: "open", Unit: "count"},
			{Key: "rss_before", Title: "RSS before", Unit: "MiB"},
			{Key: "rss_with", Title: "RSS with streams", Unit: "MiB"},
			{Key: "rss_per_stream", Title: "RSS/stream", Unit: "KiB"},
			{Key: "goroutines_per_stream", Title: "goroutines/stream", Unit: "x"},
		},
	}
	tab.add("cairn", map[string]float64{"streams": float64(opened), "rss_before": mib(before.RSS), "rss_with": mib(with.RSS),
		"rss_per_stream": perStream, "goroutines_per_stream": gorPerStream})
	r.Tables = append(r.Tables, tab)
	r.invariant("idle streams open through cairn", fmt.Sprintf("= %d", n), float64(opened), "count", opened == n)
	r.target("RSS per idle stream", "<= 39 KiB (40 KB)", perStream, "KiB", perStream <= 39)
	r.target("goroutines per idle stream", "<= 1", gorPerStream, "x", gorPerStream <= 1.05)
	r.note("RSS/stream = (RSS with the streams open - RSS before) / streams open; goroutines from cairn's /metrics go_goroutines")
	return nil
}

// openIdleStream sends a streaming chat request on its own connection and
// returns once the first event arrived, leaving the stream open.
func openIdleStream(ctx context.Context, api, secret string, body []byte) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", api)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", secret, len(body), body)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		c.Close()
		return nil, fmt.Errorf("stream: %q %v", strings.TrimSpace(status), err)
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("stream: %w", err)
		}
		if bytes.Contains(line, []byte("data: ")) {
			_ = c.SetReadDeadline(time.Time{})
			return c, nil
		}
	}
}

// scrapeGauge reads one unlabelled series from a /metrics page.
func scrapeGauge(ctx context.Context, admin, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}
