package incidents

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// crockford is Crockford's base32 alphabet in lower case: no i, l, o or u,
// so IDs read aloud and typed by hand survive.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// newID returns prefix + "_" + 26 base32 characters: 10 for the Unix time
// in milliseconds (so IDs sort by creation time as strings) and 16 for 80
// random bits (so two replicas never collide).
func newID(prefix string, t time.Time) string {
	var rnd [10]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails on supported platforms
	b := make([]byte, 0, len(prefix)+1+26)
	b = append(b, prefix...)
	b = append(b, '_')
	b = appendBase32(b, uint64(t.UnixMilli()), 10)
	b = appendBase32(b, uint64(binary.BigEndian.Uint32(rnd[0:4]))<<8|uint64(rnd[4]), 8)
	b = appendBase32(b, uint64(binary.BigEndian.Uint32(rnd[5:9]))<<8|uint64(rnd[9]), 8)
	return string(b)
}

// appendBase32 appends the low 5*n bits of v as n characters, most
// significant first.
func appendBase32(dst []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, crockford[(v>>(5*uint(i)))&31])
	}
	return dst
}

// validID reports whether id looks like one of ours (prefix_ + base32),
// which also keeps it safe to use as a file name.
func validID(prefix, id string) bool {
	if len(id) != len(prefix)+1+26 || id[:len(prefix)] != prefix || id[len(prefix)] != '_' {
		return false
	}
	for i := len(prefix) + 1; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
