// Package fleet will own the cluster registry: names, labels and mesh provider from the fleet
// repo joined with credentials from the daemon config, one rate-limited client per cluster, and
// each cluster's health. It does not decide what gets applied.
package fleet
