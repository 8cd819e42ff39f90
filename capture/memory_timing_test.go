package capture

import (
	"fmt"
	"testing"
)

// BenchmarkMemoryAdd is the memory ring's add at steady state (full: every
// add evicts the oldest), with the writer's defaults (10,000 records) and
// records as the proxy makes them: a gateway, a provider and a client ID.
//
//	go test ./capture -run '^$' -bench MemoryAdd -count 5
func BenchmarkMemoryAdd(b *testing.B) {
	const ring = 10000
	recs := make([]*Record, 4*ring)
	for i := range recs {
		recs[i] = &Record{GatewayRequestID: fmt.Sprintf("gw-%016x", i), ProviderRequestID: fmt.Sprintf("chatcmpl-%024x", i),
			ClientRequestIDHash: fmt.Sprintf("%032x", i), Attempts: []Attempt{{ProviderRequestID: fmt.Sprintf("chatcmpl-%024x", i)}},
			Request: make([]byte, 300), Response: make([]byte, 300)}
	}
	m := newMemory(ring, 0)
	for _, r := range recs[:ring] {
		m.add(r)
	}
	b.ReportAllocs()
	i := ring
	for b.Loop() {
		m.add(recs[i%len(recs)])
		i++
	}
}

// TestMemoryIndexesFollowEvictions: the hashed indexes find what the
// string-keyed ones found (gateway, final and retried provider IDs,
// client hashes newest first) and forget evicted records.
func TestMemoryIndexesFollowEvictions(t *testing.T) {
	m := newMemory(3, 0)
	mk := func(i int, client string) *Record {
		return &Record{GatewayRequestID: fmt.Sprintf("gw-%d", i), ProviderRequestID: fmt.Sprintf("prov-%d", i), ClientRequestIDHash: client,
			Attempts: []Attempt{{ProviderRequestID: fmt.Sprintf("retry-%d", i)}, {ProviderRequestID: fmt.Sprintf("prov-%d", i)}}}
	}
	for i := range 5 {
		m.add(mk(i, []string{"c1", "c2"}[i%2]))
	}
	for i := range 5 {
		held := i >= 2
		for _, c := range []struct{ kind, id string }{{IDGateway, fmt.Sprintf("gw-%d", i)}, {IDProvider, fmt.Sprintf("prov-%d", i)}, {IDProvider, fmt.Sprintf("retry-%d", i)}} {
			if r := m.lookup(c.kind, c.id); (r != nil) != held || held && r.GatewayRequestID != fmt.Sprintf("gw-%d", i) {
				t.Errorf("lookup(%s, %s) = %v; held %v", c.kind, c.id, r, held)
			}
		}
	}
	if got := m.lookup(IDGateway, "prov-3"); got != nil {
		t.Errorf("lookup(gateway, a provider ID) = %v; want nil", got)
	}
	c1 := m.lookupClient("c1")
	if len(c1) != 2 || c1[0].GatewayRequestID != "gw-4" || c1[1].GatewayRequestID != "gw-2" {
		t.Errorf("lookupClient(c1) = %v; want gw-4, gw-2", c1)
	}
	if c2 := m.lookupClient("c2"); len(c2) != 1 || c2[0].GatewayRequestID != "gw-3" {
		t.Errorf("lookupClient(c2) = %v; want gw-3", c2)
	}
	if len(m.gateway) != 3 || len(m.provider) != 6 || len(m.client) != 2 {
		t.Errorf("indexes hold %d gateway, %d provider, %d client keys; want 3, 6, 2", len(m.gateway), len(m.provider), len(m.client))
	}
}
