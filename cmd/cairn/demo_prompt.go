package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// The demo's second story (issue 17): route faq-bot serves prompt v17 to
// all its traffic, with no canary; a reload ships v18, whose system text
// the mock answers in prose; Cairn opens an incident and reverts the
// prompt to v17 (auto_revert_prompt), and the file still says v18.

// faq-bot's prompt line in configs/demo.yaml, and what the demo's reload
// ships instead.
const (
	faqPromptV17 = `prompt: { version: v17, system: "You answer shipping questions in JSON. Prompt v17." }`
	faqPromptV18 = `prompt: { version: v18, system: "You answer shipping questions in a friendly paragraph. Prompt v18." }`
	faqRPS       = 30
)

// demoFAQ is the faq-bot traffic and its counts.
type demoFAQ struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sent, failed      atomic.Int64
	firstBad          atomic.Int64 // unix nanos
	reverted          atomic.Bool
	afterRevertSent   atomic.Int64
	afterRevertFailed atomic.Int64
}

// start sends faqRPS requests per second to faq-bot until stop.
func (f *demoFAQ) start(d *demo) {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		paced(ctx, faqRPS, 16, func() { f.one(d) })
	}()
}

// stop ends the traffic and waits for requests in flight. Safe to call
// twice.
func (f *demoFAQ) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

func (f *demoFAQ) one(d *demo) {
	user := fmt.Sprintf("faq-user-%d", rand.IntN(500))
	body := fmt.Sprintf(`{"model":"faq-bot","user":%q,"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"How long does shipping to Almaty take?"}]}`, user)
	req, _ := http.NewRequest(http.MethodPost, d.api+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer demo-key-search")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Client-Name", "search")
	afterRevert := f.reverted.Load()
	resp, err := d.client.Do(req)
	f.sent.Add(1)
	if afterRevert {
		f.afterRevertSent.Add(1)
	}
	bad := err != nil
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		bad = resp.StatusCode != 200 || resp.Header.Get("x-cairn-contract") == "fail"
	}
	if bad {
		f.failed.Add(1)
		f.firstBad.CompareAndSwap(0, time.Now().UnixNano())
		if afterRevert {
			f.afterRevertFailed.Add(1)
		}
	}
}

// promptStory ships faq-bot's v18, waits for the revert to v17 and tells
// it. It returns the incident's ID.
func (d *demo) promptStory(dataDir, pAddr, cAddr, redisURL string) (string, error) {
	defer d.faq.stop()
	d.say("second story: route faq-bot serves prompt v17 to 100%% of its %d req/s; there is no canary to roll back", faqRPS)
	if _, err := writeDemoConfig(dataDir, pAddr, cAddr, redisURL, "v18", true); err != nil {
		return "", err
	}
	if err := d.post("/admin/reload", nil, nil); err != nil {
		return "", fmt.Errorf("reload: %w", err)
	}
	changeAt := time.Now()
	d.say("change: faq-bot prompt v17 -> v18 by config reload; v18's text asks for prose, and the model follows it")
	revertedAt, err := d.waitPromptRevert(12 * time.Second)
	if err != nil {
		return "", err
	}
	d.faq.reverted.Store(true)
	first := time.Unix(0, d.faq.firstBad.Load())
	if d.faq.firstBad.Load() == 0 {
		first = changeAt
	}
	// The revert comes first; the incident is stored right after it.
	id := ""
	for deadline := time.Now().Add(3 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := d.get("/admin/incidents")
		if err != nil {
			continue
		}
		var list []struct {
			ID    string `json:"id"`
			Route string `json:"route"`
		}
		if json.Unmarshal(b, &list) == nil {
			for _, x := range list {
				if x.Route == "faq-bot" {
					id = x.ID
					break
				}
			}
		}
	}
	if id == "" {
		return "", fmt.Errorf("no incident on faq-bot")
	}
	d.say("incident %s on faq-bot; revert: prompt v18 -> v17, %.0f ms after the first bad response (the file still says v18: an override holds v17 on every replica and across restarts)",
		id, float64(revertedAt.Sub(first).Microseconds())/1000)
	time.Sleep(2 * time.Second)
	d.faq.stop()
	d.say("after the revert: %d faq-bot requests, %d failed", d.faq.afterRevertSent.Load(), d.faq.afterRevertFailed.Load())
	return id, nil
}

// waitPromptRevert waits until /admin/state shows faq-bot serving v17 over
// a configured v18.
func (d *demo) waitPromptRevert(limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if b, err := d.get("/admin/state"); err == nil {
			var st configs.State
			if json.Unmarshal(b, &st) == nil {
				if r := st.Route("faq-bot"); r != nil && r.Prompt.Version == "v17" && r.ConfiguredPrompt != nil && r.ConfiguredPrompt.Version == "v18" {
					return time.Now(), nil
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("the faq-bot prompt was not reverted within %s", limit)
}
