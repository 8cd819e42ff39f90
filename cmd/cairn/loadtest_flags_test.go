package main

import (
	"slices"
	"testing"
)

// TestLoadtestBoolFlagTakesNoValue: `cairn loadtest overhead --body-size
// --json body.json`, the command the README gives, kept --json's value
// as the scenario name: --body-size, a bool, was listed as taking a value
// and swallowed "--json" (issue 15).
func TestLoadtestBoolFlagTakesNoValue(t *testing.T) {
	got := flagsAnywhere([]string{"overhead", "--body-size", "--json", "body.json"}, loadtestValueFlags)
	want := []string{"--body-size", "--json", "body.json", "overhead"}
	if !slices.Equal(got, want) {
		t.Errorf("flagsAnywhere = %q; want %q", got, want)
	}
}
