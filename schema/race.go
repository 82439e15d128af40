//go:build race

package schema

// raceBuilt: the race detector reserves terabytes of address space for its shadow memory, so
// a race-built worker cannot run under an address-space limit.
const raceBuilt = true
