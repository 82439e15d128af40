// Package drift will own live state from watches, the comparison of live objects with the
// last applied ones under ignore rules, and healing or reporting what changed out of band.
package drift
