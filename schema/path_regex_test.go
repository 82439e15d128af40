package schema

import "testing"

// TestMayMatchUnder: a regex is held to a delegated prefix exactly when some path it matches
// is the prefix or under it.
func TestMayMatchUnder(t *testing.T) {
	for _, c := range []struct {
		re, prefix string
		want       bool
	}{
		{"/(favicon\\.ico|robots\\.txt)", "/orders", false},
		{"/(shop|store)/sale", "/shop", true},
		{"/shop", "/shop", true},
		{"/shopping/.*", "/shop", false},
		{"/sho.*", "/shop", true},
		{"/[a-z]+/[0-9]+", "/orders", true},
		{"/[0-9]+/x", "/orders", false},
		{"/orders", "/orders/", true},
		{"/api/v[0-9]+/.*", "/api/v1/health", true},
		{"/.*", "/", true},
		{"/p/[0-9]+", "/shop", false},
	} {
		if got := mayMatchUnder(c.re, c.prefix); got != c.want {
			t.Errorf("mayMatchUnder(%q, %q) = %v, want %v", c.re, c.prefix, got, c.want)
		}
	}
}
