package configs

import "crypto/subtle"

// keyIndex maps each gateway key's SHA-256 digest to its position in
// Config.Keys. It is built once by Load and never changed, so a *Config is
// still safe for concurrent reads; a reload loads a new Config with its own
// index, and the gateway swaps both at once (issue 15).
type keyIndex map[[32]byte]int

// decoyDigest is what KeyByDigest compares a presented digest with when the
// index holds none like it, so that a miss does the same work as a hit.
var decoyDigest = [32]byte{
	0x63, 0x61, 0x69, 0x72, 0x6e, 0x2d, 0x6e, 0x6f, 0x2d, 0x73, 0x75, 0x63, 0x68, 0x2d, 0x6b, 0x65,
	0x79, 0x2d, 0x64, 0x69, 0x67, 0x65, 0x73, 0x74, 0x2d, 0x69, 0x6e, 0x64, 0x65, 0x78, 0x00, 0x01,
}

// indexKeys fills c.keyIndex and each key's route allow-set from the
// validated keys. Validation refuses two keys with one secret, so each
// digest names at most one key.
func (c *Config) indexKeys() {
	c.keyIndex = make(keyIndex, len(c.Keys))
	for i := range c.Keys {
		k := &c.Keys[i]
		if k.Digest != ([32]byte{}) {
			c.keyIndex[k.Digest] = i
		}
		k.allowed = nil
		if len(k.Routes) > 0 {
			k.allowed = make(map[string]struct{}, len(k.Routes))
			for _, r := range k.Routes {
				k.allowed[r] = struct{}{}
			}
		}
	}
}

// KeyByDigest returns the key whose SHA-256 digest is d, or nil. Its cost
// does not grow with the number of keys: one map lookup by digest, then
// one constant-time compare of all 32 bytes (against a decoy on a miss,
// so that an unknown key costs what a known one does). The map lookup
// sees only the digest, which a client cannot steer byte by byte, so its
// timing reveals nothing about the secrets. The returned Key is part of c
// and read only.
//
// A Config built by hand rather than by Load has no index; KeyByDigest then
// compares d with every key, in constant time each.
func (c *Config) KeyByDigest(d *[32]byte) *Key {
	if c.keyIndex == nil {
		var found *Key
		for i := range c.Keys {
			if subtle.ConstantTimeCompare(d[:], c.Keys[i].Digest[:]) == 1 {
				found = &c.Keys[i]
			}
		}
		return found
	}
	i, ok := c.keyIndex[*d]
	want := &decoyDigest
	if ok {
		want = &c.Keys[i].Digest
	}
	if subtle.ConstantTimeCompare(d[:], want[:]) != 1 || !ok {
		return nil
	}
	return &c.Keys[i]
}

// Allows reports whether the key may use the route: true when the key has
// no routes allow-list, otherwise whether route is on it. One map lookup
// for a Key of a loaded Config.
func (k *Key) Allows(route string) bool {
	if len(k.Routes) == 0 {
		return true
	}
	if k.allowed != nil {
		_, ok := k.allowed[route]
		return ok
	}
	for _, r := range k.Routes {
		if r == route {
			return true
		}
	}
	return false
}
