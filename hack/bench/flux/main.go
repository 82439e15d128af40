// Command flux measures meshcd's reconciler beside fluxcd/pkg/ssa's ApplyAllStaged, the
// server-side apply engine of Flux's controllers, on the same real kube-apiserver: a cold apply
// of 1,000 ConfigMaps and 200 Istio objects, then the requests a no-op re-sync of the same
// objects costs each of them.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/hack/bench/benchfleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func main() {
	configMaps := flag.Int("configmaps", 1000, "ConfigMaps in the bundle")
	services := flag.Int("services", 100, "mesh services (a VirtualService and a DestinationRule each)")
	flag.Parse()
	if err := run(*configMaps, *services); err != nil {
		fmt.Fprintln(os.Stderr, "bench flux:", err)
		os.Exit(1)
	}
}

type counter struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func run(configMaps, services int) error {
	ctx := context.Background()
	env, err := testenv.Start(ctx, testenv.Options{Names: []string{"bench"}})
	if err != nil {
		return err
	}
	defer env.Stop()
	cfg := env.Clusters[0].Config()

	// Warm the apiserver up with flux, so neither peer pays its cold start.
	var fluxRequests atomic.Int64
	fcfg := rest.CopyConfig(cfg)
	fcfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return counter{next: rt, n: &fluxRequests} })
	cl, err := client.New(fcfg, client.Options{})
	if err != nil {
		return err
	}
	manager := ssa.NewResourceManager(cl, polling.NewStatusPoller(cl, cl.RESTMapper(), polling.Options{}), ssa.Owner{Field: "flux-bench", Group: "bench.meshcd.io"})
	warm, err := benchfleet.Bundle(ctx, "bench-warmup", 100, 10)
	if err != nil {
		return err
	}
	if _, err := manager.ApplyAllStaged(ctx, warm.Objects, ssa.DefaultApplyOptions()); err != nil {
		return err
	}

	fb, err := benchfleet.Bundle(ctx, "bench-flux", configMaps, services)
	if err != nil {
		return err
	}
	n := len(fb.Objects)
	start := time.Now()
	if _, err := manager.ApplyAllStaged(ctx, copies(fb.Objects), ssa.DefaultApplyOptions()); err != nil {
		return err
	}
	flux := time.Since(start)
	before := fluxRequests.Load()
	if _, err := manager.ApplyAllStaged(ctx, copies(fb.Objects), ssa.DefaultApplyOptions()); err != nil {
		return err
	}
	fluxNoop := fluxRequests.Load() - before

	c, err := fleet.Connect(schema.Cluster{Name: "bench", Mesh: schema.MeshIstio}, cfg, fleet.DefaultClientOptions())
	if err != nil {
		return err
	}
	defer c.Live.Stop()
	mb, err := benchfleet.Bundle(ctx, "bench-meshcd", configMaps, services)
	if err != nil {
		return err
	}
	r := reconciler.New()
	start = time.Now()
	if _, err := r.Sync(ctx, c, mb, reconciler.DefaultSyncOptions()); err != nil {
		return err
	}
	meshcd := time.Since(start)
	mbefore := c.Requests()
	if _, err := r.Sync(ctx, c, mb, reconciler.DefaultSyncOptions()); err != nil {
		return err
	}
	meshcdNoop := c.Requests().Sub(mbefore).Total

	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	fmt.Printf("cold apply of %d objects, same apiserver:\n", n)
	fmt.Printf("  meshcd reconciler          %6.0f objects/s (%s)\n", rate(meshcd), meshcd.Round(time.Millisecond))
	fmt.Printf("  fluxcd/pkg/ssa ApplyAllStaged %3.0f objects/s (%s)   meshcd/flux = %.2fx (target >= 3x)\n", rate(flux), flux.Round(time.Millisecond), flux.Seconds()/meshcd.Seconds())
	fmt.Printf("no-op re-sync: meshcd %.4f requests per object, flux %.2f requests per object\n", float64(meshcdNoop)/float64(n), float64(fluxNoop)/float64(n))
	return nil
}

func copies(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopy()
	}
	return out
}
