// Package gates will own performance gates: fortio load runs, thresholds, comparison against
// a baseline from Git, and the result files and charts. Scheduling belongs to sources.
package gates
