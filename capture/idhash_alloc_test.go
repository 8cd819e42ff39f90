//go:build !race

package capture

import "testing"

// TestClientIDHashAllocatesItsResultOnly: the writer hashes every
// record's client ID; with pooled HMACs that costs the result string
// alone (hmac.New made it 8 allocations). Not under -race, where
// sync.Pool drops items on purpose.
func TestClientIDHashAllocatesItsResultOnly(t *testing.T) {
	h := &idHasher{keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}}
	if n := testing.AllocsPerRun(100, func() { _ = h.hash("client-0001") }); n > 1 {
		t.Errorf("hash allocates %v times; want 1 (the string)", n)
	}
}
