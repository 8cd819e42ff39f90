package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
	"time"
)

// idGen makes gateway request IDs: "req_" + 26 Crockford base32 characters
// holding a 48-bit millisecond timestamp, a 32-bit per-process random value
// and a 48-bit counter. IDs sort by time across replicas (to the
// millisecond) and never repeat within a process. Safe for concurrent use.
type idGen struct {
	proc uint32
	ctr  atomic.Uint64
	now  func() time.Time
}

func newIDGen(now func() time.Time) *idGen {
	var b [12]byte
	_, _ = rand.Read(b[:])
	g := &idGen{proc: binary.BigEndian.Uint32(b[:4]), now: now}
	g.ctr.Store(binary.BigEndian.Uint64(b[4:]) >> 16)
	return g
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// idLen is the length of an ID.
const idLen = 4 + 26

// Next returns a new ID.
func (g *idGen) Next() string {
	var out [idLen]byte
	return string(g.AppendNext(out[:0]))
}

// AppendNext appends a new ID to dst.
func (g *idGen) AppendNext(dst []byte) []byte {
	ms := uint64(g.now().UnixMilli()) & (1<<48 - 1)
	n := g.ctr.Add(1) & (1<<48 - 1)
	// 128 bits: ms(48) | proc(32) | n(48)
	hi := ms<<16 | uint64(g.proc>>16)
	lo := uint64(g.proc&0xffff)<<48 | n
	var out [idLen]byte
	copy(out[:], "req_")
	// Encode 130 bits (2 leading zero bits) as 26 base32 characters.
	for i := 25; i >= 0; i-- {
		out[4+i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return append(dst, out[:]...)
}
