package daemon

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
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

// TestLoadChecksThePolicyFirst: a gate the daemon's policy refuses sends nothing (a listener
// standing in for the target, and one for the daemon itself, count no connection); an allowed
// gate runs in the load worker and reaches its target.
func TestLoadChecksThePolicyFirst(t *testing.T) {
	var target, self atomic.Int64
	targetURL := countingServer(t, &target)
	selfURL := countingServer(t, &self)
	selfAddr := netip.MustParseAddrPort(strings.TrimPrefix(selfURL, "http://"))
	g := schema.Gate{Load: schema.LoadProfile{QPS: 100, Connections: 1, Requests: 10, Headers: map[string]string{"Authorization": "Bearer secret"}}}
	worker, err := gates.SelfLoadWorker()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		cfg      GatesConfig
		url      string
		by       gates.Trigger
		wantSent bool
	}{
		{"loopback not allowed", GatesConfig{}, targetURL, gates.Trusted, false},
		{"the daemon's own address", GatesConfig{AllowLoopback: true}, selfURL + "/metrics", gates.Trusted, false},
		{"a pull request to a host not listed", GatesConfig{AllowLoopback: true, PreviewHosts: []string{"preview.example.com"}}, targetURL, gates.PullRequest, false},
		{"allowed", GatesConfig{AllowLoopback: true}, targetURL, gates.Trusted, true},
		{"a pull request to a listed host", GatesConfig{AllowLoopback: true, PreviewHosts: []string{"127.0.0.1"}}, targetURL, gates.PullRequest, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Daemon{policy: tc.cfg.policy(selfAddr.String()), loads: worker}
			target.Store(0)
			self.Store(0)
			res, err := d.load(t.Context(), g, gates.Target{URL: tc.url, Design: "d", Gate: "g"}, tc.by)
			if !tc.wantSent {
				if err == nil || !strings.Contains(err.Error(), "policy") || target.Load()+self.Load() != 0 {
					t.Fatalf("err %v, %d+%d requests reached the listeners; want a policy refusal and none", err, target.Load(), self.Load())
				}
				return
			}
			if err != nil || res.Requests != 10 || target.Load() != 10 {
				t.Fatalf("err %v, result %+v, target saw %d requests; want 10", err, res, target.Load())
			}
		})
	}
}

// countingServer counts the requests it is sent.
func countingServer(t *testing.T, n *atomic.Int64) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	t.Cleanup(srv.Close)
	return srv.URL
}
