package main

import (
	"flag"
	"slices"
	"strings"

	"github.com/cairnhq/cairn/loadtest"
)

// drillSignalFlag defines `cairn loadtest drill --signal NAME`: which
// signal the drill breaks on the canary. check validates the value.
func drillSignalFlag(fs *flag.FlagSet) (value *string, check func() error) {
	v := fs.String("signal", "", "drill only: the signal the canary breaks ("+strings.Join(loadtest.DrillSignals(), ", ")+"; default contract_failure_rate)")
	return v, func() error {
		if *v != "" && !slices.Contains(loadtest.DrillSignals(), *v) {
			return usageError{"--signal: unknown signal " + *v + "; want one of " + strings.Join(loadtest.DrillSignals(), ", ")}
		}
		return nil
	}
}
