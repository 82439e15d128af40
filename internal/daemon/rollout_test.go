package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/gates"
)

// TestRolloutAdvancesAndRollsBack runs the daemon with a rollout of the canary over steps 20
// → 50 → 100, gated by a target that turns slow (300 ms against a 150 ms p99: far from a busy
// machine's noise) once the canary gets 50% — it reads the live VirtualService, as a real
// canary under load would. meshcd commits 20, then 50, then rolls back to 20 and holds, each
// step applied to the clusters.
func TestRolloutAdvancesAndRollsBack(t *testing.T) {
	const ns = "rollout"
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	// The target reads the canary's weight from a copy refreshed every 100 ms, not from the
	// apiserver on each request: a GET per request on a loaded machine is itself a p99 of
	// over 150 ms, which failed the 20% step in CI.
	var weight atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if weight.Load() >= 50 {
			time.Sleep(300 * time.Millisecond)
		}
		w.Write([]byte("ok"))
	}))
	defer slow.Close()
	shop := strings.Replace(design(ns, 100, ""), "manifests:", fmt.Sprintf(`gates: canary: {
		url: %q
		load: {qps: 20, connections: 2, duration: "1s"}
		thresholds: {p99: "150ms"}
		rollout: {service: "checkout", version: "canary", steps: [20, 50, 100]}
	}
	manifests:`, slow.URL+"/"), 1)
	f := setup(t, ctx, map[string][]byte{
		"clusters/fleet.cue":                   []byte(fleetFiles),
		"designs/" + ns + "/design.cue":        []byte(shop),
		"designs/" + ns + "/raw/settings.yaml": []byte(settings),
	})
	go func() {
		for ctx.Err() == nil {
			weight.Store(int64(canaryWeight(t, f, ns)))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	startDaemon(t, f.config, f.addr)
	eventually(t, 120*time.Second, "the rollout held at 20% after failing at 50%", func() bool {
		data, err := f.repo.ReadFile(ctx, "main", "designs/"+ns+"/rollout-canary.cue")
		return err == nil && strings.Contains(string(data), "held:") && canaryWeight(t, f, ns) == 20
	})
	commits, err := f.repo.Log(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for i := len(commits) - 1; i >= 0; i-- {
		if s := commits[i].Subject; strings.HasPrefix(s, gates.RolloutMarker) {
			steps = append(steps, s[strings.Index(s, ns+"/canary"):])
		}
	}
	want := []string{ns + "/canary advanced to 20%", ns + "/canary advanced to 50%", ns + "/canary rolled back to 20%"}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Errorf("rollout commits (-want +got)\n%s", diff)
	}
}

func canaryWeight(t *testing.T, f fixture, ns string) int {
	t.Helper()
	c := f.clients["east"]
	m, err := c.Live.Mapping(vsGVK)
	if err != nil {
		return -1
	}
	o, err := c.Dynamic.Resource(m.Resource).Namespace(ns).Get(context.Background(), "checkout", getOptions)
	if err != nil {
		return -1
	}
	return weightOf(o, "canary")
}

// TestSideBySideRollout rolls a canary out over 10 → 50 → 100, gated by a side-by-side gate
// that loads the stable and the canary version in one run. Two designs of one repo: one whose
// canary answers 50 ms slower than its stable version, one whose canary is as fast (the
// regression is well above the gate's 20 ms noise floor, under race-built processes on a
// busy machine). The slow
// canary fails before it gets any traffic: meshcd commits the rollback and holds. The even
// canary passes every step and reaches 100%, each step applied to the clusters.
func TestSideBySideRollout(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	server := func(delay time.Duration) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(delay)
			w.Write([]byte("ok"))
		}))
		t.Cleanup(s.Close)
		return s.URL + "/"
	}
	gate := func(stable, canary string) string {
		return fmt.Sprintf(`gates: canary: {
		url: %q
		load: {qps: 40, connections: 4, duration: "4s"}
		compare: {baseline: "stable", candidate: "canary", urls: {stable: %q, canary: %q}, maxRegression: "20%%", minDifference: "20ms", slice: "250ms"}
		rollout: {service: "checkout", version: "canary", steps: [10, 50, 100]}
	}`, stable, stable, canary)
	}
	files := named("slowcanary", everywhere, 100, "EUR", gate(server(time.Millisecond), server(51*time.Millisecond)))
	for k, v := range named("evencanary", everywhere, 100, "EUR", gate(server(time.Millisecond), server(time.Millisecond))) {
		files[k] = v
	}
	f := newFleet(t, ctx, []repoSpec{{name: "canaries", files: files}}, nil, "")
	startDaemon(t, f.config, f.addr)
	rollout := func(design string) string {
		data, _ := f.repos[0].ReadFile(ctx, "main", "designs/"+design+"/rollout-canary.cue")
		return string(data)
	}
	within(t, 3*time.Minute, "the even canary at 100% everywhere, the slow one held", func() bool {
		for _, c := range []string{"east", "west", "central"} {
			if f.weight(t, c, "evencanary") != 0 || f.weight(t, c, "slowcanary") != 100 {
				return false
			}
		}
		return strings.Contains(rollout("evencanary"), "current: 100") && strings.Contains(rollout("slowcanary"), "held:")
	})
	commits, err := f.repos[0].Log(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for i := len(commits) - 1; i >= 0; i-- {
		if s := commits[i].Subject; strings.HasPrefix(s, gates.RolloutMarker) {
			// Steps of two designs decided together may share a commit ("a; b").
			steps = append(steps, strings.Split(strings.TrimLeft(strings.TrimPrefix(s, gates.RolloutMarker), ": "), "; ")...)
		}
	}
	var slow, even []string
	for _, s := range steps {
		if strings.HasPrefix(s, "slowcanary/") {
			slow = append(slow, s)
		} else {
			even = append(even, s)
		}
	}
	if diff := cmp.Diff([]string{"slowcanary/canary rolled back to 0%"}, slow); diff != "" {
		t.Errorf("slow canary's rollout commits (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff([]string{"evencanary/canary advanced to 10%", "evencanary/canary advanced to 50%", "evencanary/canary advanced to 100%"}, even); diff != "" {
		t.Errorf("even canary's rollout commits (-want +got)\n%s", diff)
	}
	// The verdict that held the slow canary names the versions and the ratio.
	data, err := f.repos[0].ReadFile(ctx, "main", "status/gates/slowcanary/canary/east.md")
	if err != nil || !strings.Contains(string(data), "p50 canary/stable") || !strings.Contains(string(data), "| canary |") {
		t.Errorf("the slow canary's verdict on east: %v\n%s", err, data)
	}
}
