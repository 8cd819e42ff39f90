//go:build race

package configs_test

// raceEnabled is true under -race, which makes the scale tests several
// times slower; they skip.
const raceEnabled = true
