//go:build !race

// Package race says whether this binary is built with the race detector, for the few limits
// the detector changes: the address space a process needs, and how long CPU-bound work takes.
package race

// Enabled: this binary is built with the race detector (make test's binaries are).
const Enabled = false

// Slowdown is how many times longer CPU-bound work takes in this build than in a release
// build: none.
const Slowdown = 1
