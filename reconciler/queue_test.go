package reconciler

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestQueueRetriesUntilConverged: a job for a cluster whose apiserver is down fails and is
// retried with backoff, with no new submission, until the cluster is back and the job has
// created everything; a newer job replaces the failing one and is synced at once.
func TestQueueRetriesUntilConverged(t *testing.T) {
	bundles, d := renderFleet(t, shopDesign("retry", ""), "retry", "r1")
	clusters := connect(t)
	victim := env.Cluster("west")
	victim.Stop()
	started := false
	defer func() {
		if !started {
			_ = victim.Start(t.Context())
		}
	}()
	opts := DefaultQueueOptions()
	opts.MaxAttempts, opts.BaseDelay, opts.MaxDelay, opts.AttemptTimeout = 0, 50*time.Millisecond, 500*time.Millisecond, 5*time.Second
	q := New().NewQueue(clusters["west"], opts)
	ctx := t.Context()
	go q.Run(ctx)

	var mu sync.Mutex
	var attempts []*SyncResult
	finals := 0
	q.Submit("retry", Job{Cluster: clusters["west"], Bundle: bundles["west"], Options: options(d)}, func(res *SyncResult, final bool) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, res)
		if final {
			finals++
		}
	})
	time.Sleep(3 * time.Second)
	mu.Lock()
	failed, early := len(attempts), finals
	mu.Unlock()
	if failed < 2 || early != 0 {
		t.Fatalf("while west is down: %d attempts, %d final; want several retries and none final", failed, early)
	}
	if err := victim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	started = true
	back := time.Now()
	deadline := back.Add(30 * time.Second)
	for {
		mu.Lock()
		done := finals == 1
		var last *SyncResult
		if len(attempts) > 0 {
			last = attempts[len(attempts)-1]
		}
		mu.Unlock()
		if done {
			if last.Error != "" || last.Count(Created) == 0 {
				t.Fatalf("final result: error %q, created %d", last.Error, last.Count(Created))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("west back for 30 s and the job not converged; last: %+v", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("converged %s after west came back, after %d attempts", time.Since(back).Round(time.Millisecond), len(attempts))
	if !exists(t, clusters["west"], "v1", "ConfigMap", "retry", "settings") {
		t.Error("the ConfigMap is not in west")
	}

	// A newer job for the key is synced at once, without the old job's backoff.
	bundles2, d2 := renderFleet(t, shopDesign("retry", ""), "retry", "r2")
	got := make(chan *SyncResult, 4)
	submitted := time.Now()
	q.Submit("retry", Job{Cluster: clusters["west"], Bundle: bundles2["west"], Options: options(d2)}, func(res *SyncResult, final bool) { got <- res })
	select {
	case res := <-got:
		if res.Revision != "r2" || res.Error != "" {
			t.Errorf("the newer job: revision %s, error %q", res.Revision, res.Error)
		}
		t.Logf("the newer job synced in %s", time.Since(submitted).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the newer job was not synced within 10 s")
	}
}

// TestSyncAllReturnsWhenCancelled: with one apiserver frozen mid-request, cancelling SyncAll
// returns at once, with the frozen cluster's result saying it was not synced and the others'
// results kept; no queue goroutine is left behind.
func TestSyncAllReturnsWhenCancelled(t *testing.T) {
	bundles, d := renderFleet(t, shopDesign("cancel", ""), "cancel", "r1")
	clusters := connect(t)
	victim := env.Cluster("west")
	victim.Pause()
	defer victim.Resume()
	opts := DefaultQueueOptions()
	opts.AttemptTimeout = time.Minute
	// 15 s: the other clusters' first sync must fit in it on a loaded CI machine (3 s did not).
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	start := time.Now()
	results := New().SyncAll(ctx, jobs(clusters, bundles, options(d)), opts)
	if took := time.Since(start); took > 25*time.Second {
		t.Fatalf("SyncAll returned %s after its context ended 15 s in (the frozen cluster's attempt runs for a minute)", took)
	}
	for _, res := range results {
		if res.Cluster == "west" && res.Error == "" {
			t.Error("the frozen cluster reports success")
		}
		if res.Cluster != "west" && res.Error != "" {
			t.Errorf("%s: %s", res.Cluster, res.Error)
		}
	}
	// The clusters' watch caches keep their goroutines; the queues must not.
	deadline := time.Now().Add(5 * time.Second)
	for queueGoroutines() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := queueGoroutines(); n > 0 {
		t.Errorf("%d goroutines of SyncAll's queues left after it returned", n)
	}
}

// TestResultsAccumulateAcrossRetries: one object the apiserver always refuses makes the sync
// fail and be retried; the final result still says the others were created (by the first
// attempt), not that the last attempt found them unchanged.
func TestResultsAccumulateAcrossRetries(t *testing.T) {
	files := shopDesign("accumulate", "")
	files["designs/accumulate/raw/bad.yaml"] = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 99999}]}\n"
	bundles, d := renderFleet(t, files, "accumulate", "r1")
	clusters := connect(t)
	opts := DefaultQueueOptions()
	opts.MaxAttempts, opts.BaseDelay = 3, 50*time.Millisecond
	res := New().SyncAll(t.Context(), []Job{{Cluster: clusters["west"], Bundle: bundles["west"], Options: options(d)}}, opts)[0]
	n := len(bundles["west"].Objects)
	if res.Count(Failed) != 1 || res.Count(Created) != n-1 || res.Count(Unchanged) != 0 {
		t.Fatalf("after 3 attempts: %d created, %d unchanged, %d failed of %d; want the first attempt's %d created", res.Count(Created), res.Count(Unchanged), res.Count(Failed), n, n-1)
	}
}

func TestAccumulate(t *testing.T) {
	first := &SyncResult{Entries: []Entry{{Object: "a", Action: Created}, {Object: "b", Action: Failed}, {Object: "old", Action: Pruned}}}
	second := &SyncResult{Entries: []Entry{{Object: "a", Action: Unchanged}, {Object: "b", Action: Created}}, Error: ""}
	got := Accumulate(first, second)
	want := map[string]Action{"a": Created, "b": Created, "old": Pruned}
	for _, e := range got.Entries {
		if want[e.Object] != e.Action {
			t.Errorf("%s: %s, want %s", e.Object, e.Action, want[e.Object])
		}
		delete(want, e.Object)
	}
	if len(want) != 0 {
		t.Errorf("missing %v", want)
	}
}

// queueGoroutines counts the goroutines running a Queue or SyncAll.
func queueGoroutines() int {
	buf := make([]byte, 4<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	n := 0
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "reconciler.(*Queue).") || strings.Contains(g, "reconciler.(*Reconciler).SyncAll") {
			n++
		}
	}
	return n
}
