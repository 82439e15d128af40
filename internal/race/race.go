//go:build race

package race

// Enabled: this binary is built with the race detector (make test's binaries are).
const Enabled = true

// Slowdown is how many times longer CPU-bound work takes in this build than in a release
// build. Rendering Istio's base chart takes 0.4 s in a release build and 4 s race-built on an
// idle machine; a busy machine adds about 3× to either. Wall-clock budgets meant for a
// release build are multiplied by it, so a race-built test process is held to the same
// budget in work, not in seconds.
const Slowdown = 10
