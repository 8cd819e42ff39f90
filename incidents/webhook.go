package incidents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// Webhook events.
const (
	EventOpened    = "opened"
	EventMitigated = "mitigated"
	EventResolved  = "resolved"
)

const (
	webhookQueue   = 256
	webhookTries   = 5
	webhookTimeout = 10 * time.Second
)

// WebhookPayload is the JSON body POSTed to every configured webhook.
type WebhookPayload struct {
	Event    string    `json:"event"` // opened, mitigated, resolved
	At       time.Time `json:"at"`
	Replica  string    `json:"replica,omitempty"`
	Incident Summary   `json:"incident"`
}

type delivery struct {
	hook       int
	event      string
	incidentID string
	body       []byte
}

// notifier delivers webhooks on one goroutine from a bounded queue:
// enqueue never blocks (a full queue drops and counts), each delivery is
// retried with exponential backoff, and the result is reported through
// done.
type notifier struct {
	hooks   []configs.Webhook
	client  *http.Client
	backoff time.Duration
	log     *slog.Logger
	done    func(d delivery, attempts int, err error)

	q        chan delivery
	draining chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
	dropped  atomic.Int64
}

func newNotifier(hooks []configs.Webhook, backoff time.Duration, log *slog.Logger, done func(delivery, int, error)) *notifier {
	if backoff <= 0 {
		backoff = time.Second
	}
	n := &notifier{
		hooks: hooks, backoff: backoff, log: log, done: done,
		client: &http.Client{
			Timeout: webhookTimeout,
			// Issue 12.6: a redirect would send the payload (and the
			// configured headers) to an address that the checks on the
			// configured URL never saw. The 3xx is the answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		q:        make(chan delivery, webhookQueue),
		draining: make(chan struct{}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

func (n *notifier) start() {
	if len(n.hooks) == 0 {
		return
	}
	n.wg.Add(1)
	go n.run()
}

// enqueue schedules event for every webhook. It never blocks.
func (n *notifier) enqueue(event string, inc *Incident, replica string, at time.Time) {
	if len(n.hooks) == 0 {
		return
	}
	body, err := json.Marshal(WebhookPayload{Event: event, At: at.UTC(), Replica: replica, Incident: inc.Summary()})
	if err != nil {
		n.log.Error("webhook: encode payload", "incident", inc.ID, "err", err)
		return
	}
	for i := range n.hooks {
		select {
		case n.q <- delivery{hook: i, event: event, incidentID: inc.ID, body: body}:
		default:
			n.dropped.Add(1)
			n.log.Warn("webhook queue full; notification dropped", "incident", inc.ID, "event", event, "webhook", i+1)
		}
	}
}

func (n *notifier) run() {
	defer n.wg.Done()
	for {
		select {
		case d := <-n.q:
			n.deliver(d)
		case <-n.draining:
			for {
				select {
				case d := <-n.q:
					n.deliver(d)
				default:
					return
				}
			}
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *notifier) deliver(d delivery) {
	var err error
	attempts := 0
	for attempts < webhookTries {
		attempts++
		var retry bool
		retry, err = n.post(d)
		if err == nil || !retry || attempts == webhookTries {
			break
		}
		t := time.NewTimer(n.backoff << (attempts - 1))
		select {
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			err = fmt.Errorf("%w (gave up at shutdown)", err)
			n.report(d, attempts, err)
			return
		}
	}
	n.report(d, attempts, err)
}

func (n *notifier) report(d delivery, attempts int, err error) {
	if err != nil {
		n.log.Warn("webhook delivery failed", "incident", d.incidentID, "event", d.event,
			"webhook", n.label(d.hook), "attempts", attempts, "err", err)
	}
	if n.done != nil {
		n.done(d, attempts, err)
	}
}

// post sends one attempt and says whether a failure is worth retrying.
// Errors never carry the URL (webhook URLs often embed a token).
func (n *notifier) post(d delivery) (retry bool, err error) {
	h := n.hooks[d.hook]
	ctx, cancel := context.WithTimeout(n.ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(d.body))
	if err != nil {
		return false, errors.New("bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cairn-incidents")
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return false, fmt.Errorf("status %d (redirects are not followed)", resp.StatusCode)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return true, fmt.Errorf("status %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
}

// label names a webhook by position and host, never by full URL.
func (n *notifier) label(i int) string {
	host := "?"
	if u, err := url.Parse(n.hooks[i].URL); err == nil {
		host = u.Host
	}
	return fmt.Sprintf("#%d (%s)", i+1, host)
}

// stop delivers what is queued until ctx ends, then abandons the rest.
func (n *notifier) stop(ctx context.Context) error {
	n.once.Do(func() { close(n.draining) })
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		<-done
		return fmt.Errorf("webhooks: %w", ctx.Err())
	}
}
