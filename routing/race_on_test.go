//go:build race

package routing

// raceEnabled is true when the tests run under -race, which makes them
// several times slower; long loops shrink.
const raceEnabled = true
