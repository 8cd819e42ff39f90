package capture

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/redistest"
)

// gwID makes a gateway-shaped request ID (req_ + 26 characters).
func gwID(i int) string { return fmt.Sprintf("req_%026d", i) }

// Issue 12.12: a client x-request-id equal to another request's gateway ID
// made lookups return the client's record. Issue 12.14: a client ID that
// masking changed (a phone, a Luhn-valid number) could not be looked up,
// and the raw ID was stored and became a Redis key name.
func TestLookupNamespaces(t *testing.T) {
	rs := redistest.Start(t)
	rc := newRedisClient(t, rs)
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir, Redis: rc})
	w.Start()
	rec := func(i int, provider, client string) *Record {
		r := testRecord(i)
		r.GatewayRequestID, r.ProviderRequestID, r.ClientRequestID = gwID(i), provider, client
		r.Headers = map[string]string{"x-request-id": client}
		w.Enqueue(r)
		return r
	}
	const phoneID, cardID = "cust-+1-415-555-2671", "4111111111111111"
	rec(1, "prov-1", "app-1")
	rec(2, "prov-2", gwID(1))  // hijack attempt: the client sends record 1's gateway ID
	rec(3, "prov-3", "prov-1") // and record 1's provider ID
	rec(4, "prov-4", "order-42")
	rec(5, "prov-5", "order-42")
	rec(6, "prov-6", phoneID)
	rec(7, "prov-7", cardID)
	closeWriter(t, w)

	want := []struct {
		id, kind string
		gw       []int
	}{
		{gwID(1), IDGateway, []int{1}},
		{"prov-1", IDProvider, []int{1}},
		{"app-1", IDClient, []int{1}},
		{"order-42", IDClient, []int{5, 4}},
		{phoneID, IDClient, []int{6}},
		{cardID, IDClient, []int{7}},
		{gwID(2), IDGateway, []int{2}},
	}
	check := func(where string, find func(id string) (Match, error)) {
		t.Helper()
		for _, tt := range want {
			m, err := find(tt.id)
			var got []string
			for _, r := range m.Records {
				got = append(got, r.GatewayRequestID)
			}
			var exp []string
			for _, i := range tt.gw {
				exp = append(exp, gwID(i))
			}
			if err != nil || m.Kind != tt.kind || strings.Join(got, ",") != strings.Join(exp, ",") {
				t.Errorf("%s: find(%q) = %s %v, %v; want %s %v", where, tt.id, m.Kind, got, err, tt.kind, exp)
			}
		}
		for _, id := range []string{"[PHONE]", "[CARD]", "cust-[NUMBER]", "[NUMBER]", "nope"} {
			if m, err := find(id); err == nil {
				t.Errorf("%s: find(%q) = %s %d records; want not found", where, id, m.Kind, len(m.Records))
			}
		}
	}
	check("memory", func(id string) (Match, error) { return w.Find(context.Background(), id) })
	check("files", func(id string) (Match, error) { return FindAllInDir(dir, id) })
	// Another replica: its own data_dir, nothing in memory, the shared key
	// and index in Redis.
	other := newTestWriter(t, WriterOptions{DataDir: t.TempDir(), Redis: rc})
	other.Start()
	check("redis", func(id string) (Match, error) { return other.Find(context.Background(), id) })

	// Neither the raw IDs nor their digits are stored or used as key names.
	keys, _ := rc.Keys(context.Background(), "*").Result()
	lines := readRecords(t, dir)
	var stored []string
	for _, r := range lines {
		stored = append(stored, r.ClientRequestID, r.Headers["x-request-id"])
	}
	for _, s := range append(keys, stored...) {
		// Long runs only: keys hold hex digests, and a 3-digit run such as
		// "415" turns up in a random one now and then.
		for _, raw := range []string{"415-555-2671", "4155552671", "41111111"} {
			if strings.Contains(s, raw) {
				t.Errorf("%q holds %q of a raw client ID", s, raw)
			}
		}
	}
	if r := lines[5]; r.ClientRequestID != "cust-[PHONE]" && r.ClientRequestID != "cust-[NUMBER]" {
		t.Errorf("stored phone ID = %q; want it masked", r.ClientRequestID)
	}
	if r := lines[6]; r.ClientRequestID != PlaceholderCard {
		t.Errorf("stored card ID = %q; want %s", r.ClientRequestID, PlaceholderCard)
	}
}

// The hashing key survives a restart (kept in data_dir), so records
// written before it are still found by client ID.
func TestLookupKeyPersists(t *testing.T) {
	dir := t.TempDir()
	for round := range 2 {
		w := newTestWriter(t, WriterOptions{DataDir: dir, Capture: configs.Capture{Memory: 1}})
		w.Start()
		r := testRecord(round)
		r.ClientRequestID = fmt.Sprintf("client-%d", round)
		w.Enqueue(r)
		closeWriter(t, w)
		for i := 0; i <= round; i++ {
			if m, err := w.Find(context.Background(), fmt.Sprintf("client-%d", i)); err != nil || m.Kind != IDClient {
				t.Errorf("round %d: Find(client-%d) = %v, %v", round, i, m, err)
			}
		}
	}
}

// Records written before client IDs were hashed are still found by the
// client ID they store (unless it is masked).
func TestLookupLegacyClientID(t *testing.T) {
	dir := t.TempDir()
	w := newTestWriter(t, WriterOptions{DataDir: dir})
	w.Start()
	closeWriter(t, w)
	legacy := `{"gateway_request_id":"` + gwID(9) + `","client_request_id":"app-legacy-1","received_at":"2026-11-01T10:00:00Z","endpoint":"chat.completions","params":{"stream":false},"status":200,"outcome":"ok","latency_ms":1,"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0},"contract":{"verdict":"none"},"body_sampled":false}` + "\n"
	masked := strings.Replace(strings.Replace(legacy, "app-legacy-1", "[EMAIL]", 1), gwID(9), gwID(8), 1)
	if err := os.WriteFile(filepath.Join(dir, captureSubdir, fileName("2026-11-01", 1)), []byte(legacy+masked), 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := FindAllInDir(dir, "app-legacy-1"); err != nil || m.Kind != IDClient || m.Records[0].GatewayRequestID != gwID(9) {
		t.Errorf("FindAllInDir(legacy client ID) = %+v, %v", m, err)
	}
	if _, err := FindAllInDir(dir, "[EMAIL]"); err == nil {
		t.Errorf("a masked legacy client ID was found")
	}
}
