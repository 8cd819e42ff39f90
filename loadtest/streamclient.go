package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/tidwall/gjson"
)

// ErrBrokenStream marks a stream that started (status 200) but did not end
// properly: a read error, an error event, a chunk that is not JSON, or no
// [DONE].
var ErrBrokenStream = errors.New("broken stream")

// maxSSELine bounds one SSE line.
const maxSSELine = 4 << 20

// StreamClient sends streaming chat completion requests and records their
// time to first chunk and inter-chunk gaps. Safe for concurrent use; the
// histograms may be read at any time.
type StreamClient struct {
	// HTTP sends the requests. NewStreamClient sets one sized for many
	// concurrent streams.
	HTTP *http.Client
	// FirstChunk records, per stream, the time from sending the request to
	// the first data event (the first token: the mock sends the role with
	// its first piece).
	FirstChunk *Histogram
	// Gaps records the time between consecutive data events.
	Gaps *Histogram
	// Total records the time from sending the request to [DONE].
	Total *Histogram
}

// NewStreamClient returns a StreamClient whose transport keeps up to
// maxConns idle connections per host (plain HTTP/1.1, no compression).
func NewStreamClient(maxConns int) *StreamClient {
	maxConns = max(maxConns, 1)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &StreamClient{
		HTTP:       &http.Client{Transport: tr},
		FirstChunk: NewHistogram(),
		Gaps:       NewHistogram(),
		Total:      NewHistogram(),
	}
}

// CloseIdle closes the client's idle connections.
func (c *StreamClient) CloseIdle() { c.HTTP.CloseIdleConnections() }

// StreamStats describes one stream.
type StreamStats struct {
	Status     int
	RequestID  string        // the response's x-request-id
	Chunks     int           // data events before [DONE]
	FirstChunk time.Duration // request sent → first data event
	MaxGap     time.Duration // largest gap between data events
	Total      time.Duration // request sent → end of stream
	Done       bool          // [DONE] arrived
	Usage      bool          // a chunk carried a usage object
	Content    []byte        // concatenated choices[0].delta.content
}

// Do POSTs body to url with header (Content-Type defaults to JSON) and
// reads the SSE response to its end. A non-200 status is an error with the
// body's start; a stream that breaks after a 200 is an error wrapping
// ErrBrokenStream. The returned stats are filled as far as the stream got.
func (c *StreamClient) Do(ctx context.Context, url string, header http.Header, body []byte) (StreamStats, error) {
	var st StreamStats
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return st, fmt.Errorf("stream request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return st, fmt.Errorf("stream request: %w", err)
	}
	defer resp.Body.Close()
	st.Status = resp.StatusCode
	st.RequestID = resp.Header.Get("x-request-id")
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return st, fmt.Errorf("stream request: status %d: %s", resp.StatusCode, bytes.TrimSpace(snippet))
	}
	var last time.Time
	err = readSSE(resp.Body, func(data []byte) error {
		now := time.Now()
		if bytes.Equal(data, []byte("[DONE]")) {
			st.Done = true
			return errStopSSE
		}
		if !gjson.ValidBytes(data) {
			return fmt.Errorf("%w: chunk %d is not JSON", ErrBrokenStream, st.Chunks)
		}
		if e := gjson.GetBytes(data, "error"); e.Exists() {
			return fmt.Errorf("%w: error event: %s", ErrBrokenStream, e.Get("message").Str)
		}
		st.Chunks++
		if st.Chunks == 1 {
			st.FirstChunk = now.Sub(start)
			c.FirstChunk.Record(st.FirstChunk)
		} else {
			gap := now.Sub(last)
			st.MaxGap = max(st.MaxGap, gap)
			c.Gaps.Record(gap)
		}
		last = now
		if u := gjson.GetBytes(data, "usage"); u.IsObject() {
			st.Usage = true
		}
		st.Content = append(st.Content, gjson.GetBytes(data, "choices.0.delta.content").Str...)
		return nil
	})
	st.Total = time.Since(start)
	switch {
	case errors.Is(err, ErrBrokenStream):
		return st, err
	case err != nil:
		return st, fmt.Errorf("%w: after %d chunks: %w", ErrBrokenStream, st.Chunks, err)
	case !st.Done:
		return st, fmt.Errorf("%w: ended after %d chunks without [DONE]", ErrBrokenStream, st.Chunks)
	}
	c.Total.Record(st.Total)
	return st, nil
}

var errStopSSE = errors.New("stop reading SSE")

// readSSE reads server-sent events from r and calls fn with each event's
// data (data lines joined by "\n"; comments and other fields skipped) as the
// event completes. data is valid only during the call. It returns nil at EOF
// or when fn returns errStopSSE, fn's other errors, and read errors
// (io.ErrUnexpectedEOF included).
func readSSE(r io.Reader, fn func(data []byte) error) error {
	br := bufio.NewReaderSize(r, 16<<10)
	var data, long []byte
	has := false
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
				if len(long) > maxSSELine {
					return fmt.Errorf("read sse: line over %d bytes", maxSSELine)
				}
			}
			line = long
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(line) > 0 || has {
					return io.ErrUnexpectedEOF
				}
				return nil
			}
			return fmt.Errorf("read sse: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if has {
				if err := fn(data); err != nil {
					if errors.Is(err, errStopSSE) {
						return nil
					}
					return err
				}
			}
			data, has = data[:0], false
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("data:")):
			v := line[5:]
			if len(v) > 0 && v[0] == ' ' {
				v = v[1:]
			}
			if has {
				data = append(data, '\n')
			}
			data = append(data, v...)
			has = true
		}
	}
}
