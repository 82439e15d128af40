//go:build !race

package schema

const raceBuilt = false
