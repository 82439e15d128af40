package daemon

import (
	"testing"

	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/status"
)

// TestMeasured: a change gate reruns when the design's render or the gate's own definition
// changed since its verdict, and not for a commit that changed neither.
func TestMeasured(t *testing.T) {
	g := schema.Gate{URL: "http://checkout.shop:8080/", Load: schema.LoadProfile{QPS: 10}}
	slower := g
	slower.URL = "http://checkout.shop:8080/?delay=80ms"
	st := &syncState{revision: "b", digest: "sha256:1"}
	v := status.Gate{Revision: "a", Digest: "sha256:1", Spec: gates.SpecHash(g)}
	for _, tt := range []struct {
		name string
		v    status.Gate
		st   *syncState
		g    schema.Gate
		want bool
	}{
		{"another design's commit: same render, same gate", v, st, g, true},
		{"the design renders differently", v, &syncState{revision: "b", digest: "sha256:2"}, g, false},
		{"the gate itself changed", v, st, slower, false},
		{"a verdict from before digests: by revision", status.Gate{Revision: "b"}, st, g, true},
		{"a verdict from before digests, another revision", status.Gate{Revision: "a"}, st, g, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := measured(tt.v, tt.st, tt.g); got != tt.want {
				t.Errorf("measured = %v, want %v", got, tt.want)
			}
		})
	}
}
