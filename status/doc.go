// Package status will own the formats of the status files meshcd commits back to Git and the
// fleet summary. Pushing them belongs to sources.
package status
