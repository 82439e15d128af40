// Package reconciler will own the sync loop: server-side apply, the in-cluster inventory,
// pruning, kstatus health, retries with backoff and per-cluster isolation. It neither renders
// nor compares live state for drift.
package reconciler
