package loadtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/cairnhq/cairn/configs"
)

// FillerKeySecret is the bearer token of the i-th key ManyKeysRoutesConfig
// adds; a test may present it to check that a filler key authenticates.
func FillerKeySecret(i int) string { return fmt.Sprintf("sk-cairn-filler-%d", i) }

// ManyKeysRoutesConfig returns a copy of cfg with filler keys and glob
// routes added until it has at least keys keys and routes routes, to
// measure what a gateway with many tenants and models costs per request
// (issue 15: key lookup and route matching must not grow with them).
//
// Filler keys (filler-key-N, stored as key_sha256 of FillerKeySecret(N), no
// limits) come before cfg's own keys. Filler routes (filler-N) come before
// cfg's own routes and each has one glob of a shape configs use: a literal
// prefix (filler-N-*), a literal suffix (*-fillerN) or both
// (fillerN-?-[ab]*); they reuse the targets of cfg's first route, which
// must exist. Each of cfg's own routes gains the glob NAME-*, so a client
// that asks for NAME-anything reaches it through the globs, after every
// filler glob in config order, the worst case for a linear scan; asking
// for NAME still reaches it by exact name. Filler globs match only names
// that contain "filler". cfg is not changed.
func ManyKeysRoutesConfig(cfg configs.Config, keys, routes int) configs.Config {
	out := cfg
	var fk []configs.Key
	for i := range max(keys-len(cfg.Keys), 0) {
		sum := sha256.Sum256([]byte(FillerKeySecret(i)))
		fk = append(fk, configs.Key{Name: fmt.Sprintf("filler-key-%d", i), KeySHA256: hex.EncodeToString(sum[:])})
	}
	out.Keys = append(fk, cfg.Keys...)

	var fr []configs.Route
	var targets []configs.Target
	if len(cfg.Routes) > 0 {
		targets = cfg.Routes[0].Targets
	}
	for i := range max(routes-len(cfg.Routes), 0) {
		var glob string
		switch i % 3 {
		case 0:
			glob = fmt.Sprintf("filler-%d-*", i)
		case 1:
			glob = fmt.Sprintf("*-filler%d", i)
		default:
			glob = fmt.Sprintf("filler%d-?-[ab]*", i)
		}
		fr = append(fr, configs.Route{Name: fmt.Sprintf("filler-%d", i), Match: []string{glob}, Targets: slices.Clone(targets)})
	}
	own := make([]configs.Route, len(cfg.Routes))
	for i, r := range cfg.Routes {
		r.Match = append(slices.Clone(r.Match), r.Name+"-*")
		own[i] = r
	}
	out.Routes = append(fr, own...)
	return out
}
