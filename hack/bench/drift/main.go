// Command drift measures drift detection at scale: N managed ConfigMaps spread over real
// clusters, then random out-of-band edits, each timed from the edit's response to meshcd
// noticing it and to meshcd having healed it; plus heap per managed object and API requests
// per healed object.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/meshcd/meshcd/drift"
	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/hack/bench/benchfleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/schema"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

func main() {
	clusters := flag.Int("clusters", 5, "real clusters")
	objects := flag.Int("objects", 10000, "managed objects in all")
	edits := flag.Int("edits", 200, "out-of-band edits")
	flag.Parse()
	if err := run(*clusters, *objects, *edits); err != nil {
		fmt.Fprintln(os.Stderr, "bench drift:", err)
		os.Exit(1)
	}
}

type timing struct{ edited, detected, healed time.Time }

func run(nClusters, nObjects, nEdits int) error {
	ctx := context.Background()
	env, err := testenv.Start(ctx, testenv.Options{Clusters: nClusters, SkipCRDs: true, StartTimeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	defer env.Stop()
	per := nObjects / nClusters
	b, err := benchfleet.Bundle(ctx, "bench", per, 0)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	times := map[string]*timing{}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var sites, editors []*fleet.Cluster
	var dets []*drift.Detector
	for _, tc := range env.Clusters {
		c, err := fleet.Connect(schema.Cluster{Name: tc.Name}, tc.Config(), fleet.DefaultClientOptions())
		if err != nil {
			return err
		}
		defer c.Live.Stop()
		opts := drift.DefaultOptions()
		name := tc.Name
		opts.OnDrift = func(_ string, e drift.Entry) {
			mu.Lock()
			defer mu.Unlock()
			if t, ok := times[name+" "+e.Object]; ok {
				if t.detected.IsZero() {
					t.detected = e.DetectedAt
				}
				if e.HealedAt != nil && t.healed.IsZero() {
					t.healed = *e.HealedAt
				}
			}
		}
		det := drift.NewDetector(c, opts)
		go det.Run(ctx)
		det.Track("bench", b.Objects, schema.DriftHeal, drift.Rules{})
		// As the daemon does, the apply reports what the apiserver stored to the detector:
		// without it, each object's first check waits up to 5 s for that report and comes
		// back in a burst, which the first edits queued behind (a p99 of 0.5-1.7 s).
		so := reconciler.DefaultSyncOptions()
		so.Applied = det.Applied
		if _, err := reconciler.New().Sync(ctx, c, b, so); err != nil {
			return err
		}
		sites = append(sites, c)
		dets = append(dets, det)
		// Out-of-band edits go through a client of their own, so meshcd's counter sees only
		// meshcd's requests.
		editor, err := fleet.Connect(schema.Cluster{Name: tc.Name}, tc.Config(), fleet.DefaultClientOptions())
		if err != nil {
			return err
		}
		editors = append(editors, editor)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perObject := float64(after.HeapAlloc-before.HeapAlloc) / float64(per*nClusters)

	reqBefore := make([]fleet.RequestCount, len(sites))
	for i, c := range sites {
		reqBefore[i] = c.Requests()
	}
	m, err := sites[0].Live.Mapping(k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range nEdits {
		ci := rng.IntN(len(sites))
		name := fmt.Sprintf("cm-%d", rng.IntN(per))
		key := sites[ci].Name + " ConfigMap bench/" + name
		mu.Lock()
		if _, dup := times[key]; dup {
			mu.Unlock()
			continue
		}
		t := &timing{}
		times[key] = t
		mu.Unlock()
		body := fmt.Sprintf(`{"data":{"key":"edited-%d"}}`, i)
		mu.Lock()
		t.edited = time.Now() // before the request: its round trip counts against meshcd
		mu.Unlock()
		if _, err := editors[ci].Dynamic.Resource(m.Resource).Namespace("bench").Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{FieldManager: "bench-editor"}); err != nil {
			return err
		}
		time.Sleep(25 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := true
		for _, t := range times {
			if t.healed.IsZero() {
				done = false
			}
		}
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // the Events meshcd writes after a heal are counted too
	var requests, writes int64
	for i, c := range sites {
		d := c.Requests().Sub(reqBefore[i])
		requests += d.Total
		writes += d.Writes
	}
	var detect, heal []time.Duration
	missed := 0
	mu.Lock()
	for _, t := range times {
		if t.healed.IsZero() || t.detected.IsZero() {
			missed++
			continue
		}
		detect = append(detect, t.detected.Sub(t.edited))
		heal = append(heal, t.healed.Sub(t.edited))
	}
	n := len(times)
	mu.Unlock()
	slices.Sort(detect)
	slices.Sort(heal)
	pct := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[min(len(ds)-1, int(p*float64(len(ds))))]
	}
	fmt.Printf("%d managed ConfigMaps over %d real clusters, %d random out-of-band edits (%d not healed in 30 s):\n", per*nClusters, nClusters, n, missed)
	fmt.Printf("  detection latency  p50 %s  p99 %s   (target p99 <= 1s)\n", pct(detect, .5).Round(time.Millisecond), pct(detect, .99).Round(time.Millisecond))
	fmt.Printf("  heal latency       p50 %s  p99 %s   (target p99 <= 2s)\n", pct(heal, .5).Round(time.Millisecond), pct(heal, .99).Round(time.Millisecond))
	fmt.Printf("  heap per managed object %.1f KiB (target <= 16 KiB), watch caches and trackers included\n", perObject/1024)
	healed := float64(max(1, n-missed))
	fmt.Printf("  API requests per healed object %.2f, of them writes %.2f (a forced apply, and a Kubernetes Event per ledger entry; target <= 2)\n", float64(requests)/healed, float64(writes)/healed)
	_ = dets
	return nil
}
