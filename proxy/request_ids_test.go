package proxy

// Issues 12.12 and 12.14 through the admin API: request ID namespaces and
// lookups by a client ID whose stored form is masked.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/cairnhq/cairn/internal/redistest"
)

const requestIDsConfig = `
data_dir: {{DATA}}
providers:
  - { name: mock, base_url: "http://%s/v1", timeout: 2s }
routes:
  - { name: chat, targets: [ { provider: mock, model: m } ] }
redis_url: %s
`

func TestAdminRequestIDNamespaces(t *testing.T) {
	addr := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	})
	srv := redistest.Start(t)
	tg := startGateway(t, fmt.Sprintf(requestIDsConfig, addr, srv.URL()), nil)
	send := func(clientID string) string {
		t.Helper()
		var hdr []string
		if clientID != "" {
			hdr = []string{"x-request-id", clientID}
		}
		r := do(t, "POST", tg.api+"/v1/chat/completions", "", chat("chat", ""), hdr...)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		return r.header.Get("x-request-id")
	}
	const phoneID, cardID = "cust-+1-415-555-2671", "4111111111111111"
	victim := send("")
	hijacker := send(victim) // a client replays another request's gateway ID
	o1, o2 := send("order-42"), send("order-42")
	phone, card := send(phoneID), send(cardID)
	tg.records(t, 6)

	type rec struct {
		GatewayRequestID string `json:"gateway_request_id"`
		ClientRequestID  string `json:"client_request_id"`
	}
	get := func(id string) (string, []rec) {
		t.Helper()
		r := do(t, "GET", tg.admin+"/admin/requests/"+url.PathEscape(id), "", "")
		if r.status != 200 {
			t.Errorf("/admin/requests/%s = %d %s", id, r.status, r.body)
			return "", nil
		}
		var list struct {
			Object string `json:"object"`
			Data   []rec  `json:"data"`
		}
		if json.Unmarshal(r.body, &list); list.Object == "list" {
			return r.header.Get("x-cairn-id-kind"), list.Data
		}
		var one rec
		json.Unmarshal(r.body, &one)
		return r.header.Get("x-cairn-id-kind"), []rec{one}
	}
	for _, tt := range []struct {
		id, kind string
		want     []string
	}{
		{victim, "gateway", []string{victim}},
		{hijacker, "gateway", []string{hijacker}},
		{"order-42", "client", []string{o2, o1}},
		{phoneID, "client", []string{phone}},
		{cardID, "client", []string{card}},
	} {
		kind, recs := get(tt.id)
		var got []string
		for _, r := range recs {
			got = append(got, r.GatewayRequestID)
			if tt.id == phoneID || tt.id == cardID {
				if strings.ContainsAny(r.ClientRequestID, "0123456789") {
					t.Errorf("record %s stores client ID %q; want it masked", r.GatewayRequestID, r.ClientRequestID)
				}
			}
		}
		if kind != tt.kind || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("/admin/requests/%s = %s %v; want %s %v", tt.id, kind, got, tt.kind, tt.want)
		}
	}
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	keys, _ := rc.Keys(context.Background(), "*").Result()
	for _, k := range keys {
		// Keys hold hex hashes, which may contain any short digit run by
		// chance; look for the raw IDs' distinctive parts.
		if strings.Contains(k, "415-555-2671") || strings.Contains(k, cardID) {
			t.Errorf("Redis key %q holds a raw client ID", k)
		}
	}
}
