package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cairnhq/cairn/capture"
)

// cmdUsers answers "was this user affected?": `cairn users hash VALUE
// --data-dir DIR` prints the keyed hash the gateway records for that user
// or safety_identifier value, to look for in an incident's
// scope.user_hashes or a record's user_hash. The key never leaves the data
// directory, so only someone who can read it can link a value to a hash.
func cmdUsers(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("users", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "the gateway's data directory (holds the key)")
	if err := fs.Parse(flagsAnywhere(args, map[string]bool{"data-dir": true})); err != nil {
		return usageError{err.Error()}
	}
	rest := fs.Args()
	if len(rest) != 2 || rest[0] != "hash" || *dataDir == "" {
		return usageError{"users hash VALUE --data-dir DIR"}
	}
	key, err := os.ReadFile(filepath.Join(*dataDir, capture.UserKeyFile))
	if err != nil {
		return fmt.Errorf("read the user hash key: %w", err)
	}
	h, err := capture.UserHasherFromFile(key)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h.Sum(rest[1]))
	return nil
}
