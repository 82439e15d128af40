// Command apply measures a cold apply of 1,000 ConfigMaps and 200 Istio objects to one real
// kube-apiserver with meshcd's reconciler, beside a raw concurrent client-go server-side
// apply loop (the practical limit of the machine) and `kubectl apply --server-side`, each
// into its own namespace of the same apiserver; then the requests a no-op re-sync costs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/hack/bench/benchfleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

func main() {
	configMaps := flag.Int("configmaps", 1000, "ConfigMaps in the bundle")
	services := flag.Int("services", 100, "mesh services (a VirtualService and a DestinationRule each)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of meshcd's cold apply here")
	flag.Parse()
	cpuProfile = *profile
	if err := run(*configMaps, *services); err != nil {
		fmt.Fprintln(os.Stderr, "bench apply:", err)
		os.Exit(1)
	}
}

func run(configMaps, services int) error {
	ctx := context.Background()
	env, err := testenv.Start(ctx, testenv.Options{Names: []string{"bench"}})
	if err != nil {
		return err
	}
	defer env.Stop()
	tc := env.Clusters[0]
	c, err := fleet.Connect(schema.Cluster{Name: "bench", Mesh: schema.MeshIstio}, tc.Config(), fleet.DefaultClientOptions())
	if err != nil {
		return err
	}
	defer c.Live.Stop()

	bundle := func(ns string) (*render.Bundle, error) { return benchfleet.Bundle(ctx, ns, configMaps, services) }

	// Warm the apiserver up (its first writes of each kind pay for caches and etcd), so
	// neither peer is measured cold-started.
	wb, err := benchfleet.Bundle(ctx, "bench-warmup", 100, 10)
	if err != nil {
		return err
	}
	if err := rawApply(ctx, c, wb.Objects, 16); err != nil {
		return err
	}

	// meshcd
	b, err := bundle("bench-meshcd")
	if err != nil {
		return err
	}
	r := reconciler.New()
	opts := reconciler.DefaultSyncOptions()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	start := time.Now()
	res, err := r.Sync(ctx, c, b, opts)
	if err != nil {
		return err
	}
	meshcd := time.Since(start)
	pprof.StopCPUProfile()
	n := len(b.Objects)
	before := c.Requests()
	if _, err := r.Sync(ctx, c, b, opts); err != nil {
		return err
	}
	noop := c.Requests().Sub(before)
	_ = res

	// raw client-go loop: the same objects, the same concurrency, no inventory, no cache.
	rb, err := bundle("bench-raw")
	if err != nil {
		return err
	}
	start = time.Now()
	if err := rawApply(ctx, c, rb.Objects, opts.Concurrency); err != nil {
		return err
	}
	raw := time.Since(start)

	// kubectl apply --server-side, from one file.
	kb, err := bundle("bench-kubectl")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "meshcd-bench-apply-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var docs []string
	for _, o := range kb.Objects {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		docs = append(docs, string(data))
	}
	file := filepath.Join(dir, "bundle.yaml")
	if err := os.WriteFile(file, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		return err
	}
	// The namespace first, so kubectl does not fail on ordering it has no stages for.
	if out, err := exec.Command("kubectl", "--kubeconfig", tc.KubeconfigPath, "create", "namespace", "bench-kubectl").CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl create namespace: %v: %s", err, out)
	}
	start = time.Now()
	if out, err := exec.Command("kubectl", "--kubeconfig", tc.KubeconfigPath, "apply", "--server-side", "--field-manager", "kubectl-bench", "-f", file).CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl apply: %v: %s", err, tail(out))
	}
	kubectl := time.Since(start)

	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	fmt.Printf("cold apply of %d objects (%d ConfigMaps + %d Istio objects + Namespace) to one real kube-apiserver:\n", n, configMaps, 2*services)
	fmt.Printf("  meshcd reconciler        %7.0f objects/s  (%s)\n", rate(meshcd), meshcd.Round(time.Millisecond))
	fmt.Printf("  raw client-go SSA loop   %7.0f objects/s  (%s)   meshcd/raw = %.2fx (target >= 0.8x)\n", rate(raw), raw.Round(time.Millisecond), raw.Seconds()/meshcd.Seconds())
	fmt.Printf("  kubectl apply --server-side %4.0f objects/s  (%s)   meshcd/kubectl = %.1fx\n", rate(kubectl), kubectl.Round(time.Millisecond), kubectl.Seconds()/meshcd.Seconds())
	fmt.Printf("no-op re-sync of the same bundle: %d requests, %d writes, %.4f requests per object (target <= 0.01)\n", noop.Total, noop.Writes, float64(noop.Total)/float64(n))
	return nil
}

var cpuProfile string

func tail(out []byte) string {
	if len(out) > 2000 {
		out = out[len(out)-2000:]
	}
	return string(out)
}

// rawApply server-side applies the objects in order of stages a person would write by hand:
// Namespace first, then everything else concurrently.
func rawApply(ctx context.Context, c *fleet.Cluster, objs []*unstructured.Unstructured, concurrency int) error {
	apply := func(o *unstructured.Unstructured) error {
		m, err := c.Mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
		if err != nil {
			return err
		}
		var ri dynamic.ResourceInterface = c.Dynamic.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = c.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		_, err = ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "raw-bench", Force: true})
		return err
	}
	if err := apply(objs[0]); err != nil {
		return err
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, o := range objs[1:] {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := apply(o); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}
