package configs

import "embed"

// Examples holds the example configs and their schema files, so that
// `cairn demo` runs from the binary alone, without a checkout. It is
// read-only.
//
//go:embed *.yaml schemas/*.json
var Examples embed.FS
