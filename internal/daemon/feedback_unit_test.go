package daemon

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/notify"
)

// TestDesignStatuses: what a reviewer reads in each design's check: the changes per cluster,
// the first problem of a design that failed on a cluster, and, when the repo did not load, the
// problem on the design whose folder it names (file:line kept).
func TestDesignStatuses(t *testing.T) {
	pv := Preview{Targets: []PreviewTarget{
		{Design: "shop", Cluster: "east", Changes: []string{"update a", "update b"}},
		{Design: "shop", Cluster: "west", Changes: []string{"update a"}},
		{Design: "cart", Cluster: "east"},
		{Design: "pay", Cluster: "east", Error: "apply refused:\n  webhook denied"},
		{Design: "pay", Cluster: "west", Error: "second problem"},
	}}
	want := map[string]notify.Status{
		"shop": {State: notify.Success, Description: "east: 2 changes, west: 1 change"},
		"cart": {State: notify.Success, Description: "east: no change"},
		"pay":  {State: notify.Failure, Description: "east: apply refused: webhook denied"},
	}
	if diff := cmp.Diff(want, designStatuses(pv)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}

	broken := Preview{Error: "designs/shop/design.cue:12:3: weights sum to 110\nmeshcd.yaml: cluster west is unknown"}
	want = map[string]notify.Status{
		"shop": {State: notify.Failure, Description: "designs/shop/design.cue:12:3: weights sum to 110"},
		"repo": {State: notify.Failure, Description: "meshcd.yaml: cluster west is unknown"},
	}
	if diff := cmp.Diff(want, designStatuses(broken)); diff != "" {
		t.Errorf("statuses of a repo that did not load (-want +got):\n%s", diff)
	}
}

// TestPRGateStatus: a gate's check names the check that failed with its numbers, or all of
// them when it passed.
func TestPRGateStatus(t *testing.T) {
	checks := []gates.Check{
		{Name: "p50", Observed: 12.5, Limit: 30, Unit: "ms", Pass: true},
		{Name: "p99", Observed: 61.25, Limit: 30, Unit: "ms", Pass: false},
	}
	got := prGateStatus(PreviewGate{Design: "shop", Gate: "latency", Checks: checks}, "https://x/pr/1")
	want := notify.Status{Context: "meshcd/gate/shop/latency", TargetURL: "https://x/pr/1", State: notify.Failure, Description: "p99 61.25 ms (limit 30 ms)"}
	if got != want {
		t.Errorf("failed gate: %+v, want %+v", got, want)
	}
	checks[1].Pass, checks[1].Observed = true, 20
	got = prGateStatus(PreviewGate{Design: "shop", Gate: "latency", Pass: true, Checks: checks}, "")
	if got.State != notify.Success || got.Description != "passed: p50 12.5 ms (limit 30 ms); p99 20 ms (limit 30 ms)" {
		t.Errorf("passed gate: %+v", got)
	}
	got = prGateStatus(PreviewGate{Design: "shop", Gate: "latency", Error: "dial tcp: refused"}, "")
	if got.State != notify.Error || got.Description != "dial tcp: refused" {
		t.Errorf("gate that could not run: %+v", got)
	}
}
