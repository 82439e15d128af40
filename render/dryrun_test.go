package render

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// TestRenderedObjectsAreAcceptedByARealAPIServer server-side applies, as a dry run, every
// object every example design renders for every provider, on a real kube-apiserver with the
// upstream Istio, Gateway API and Linkerd CRDs: schema mistakes golden files cannot catch.
func TestRenderedObjectsAreAcceptedByARealAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{Clusters: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	cfg := env.Clusters[0].Config()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))

	checked := 0
	for _, ex := range examples {
		fleet, designs, files := loadExample(t, ex)
		for i := range designs {
			d := &designs[i]
			// Every provider (a cluster per mesh), and every real target cluster (their ingress
			// providers and overrides).
			var clusters []schema.Cluster
			for _, mesh := range []schema.Mesh{schema.MeshIstio, schema.MeshLinkerd, schema.MeshGatewayAPI} {
				clusters = append(clusters, asMesh(t, fleet, d, mesh))
			}
			clusters = append(clusters, d.TargetClusters(fleet)...)
			for _, c := range clusters {
				mesh := c.Name
				b, err := Render(ctx, d, &c, Options{Revision: "0123abc", Repo: NewRepo(files)})
				var rerr *Error
				if errors.As(err, &rerr) {
					continue // a feature the provider cannot express; the golden file records it
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range b.Objects {
					gvk := o.GroupVersionKind()
					m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
					if err != nil {
						t.Fatalf("%s/%s/%s: %s: %v", ex, d.Name, mesh, ObjectID(o), err)
					}
					ri := dynamic.ResourceInterface(dyn.Resource(m.Resource))
					if m.Scope.Name() == meta.RESTScopeNameNamespace {
						ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
					}
					data, err := o.MarshalJSON()
					if err != nil {
						t.Fatal(err)
					}
					opts := metav1.PatchOptions{FieldManager: "meshcd-test", DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}
					if o.GetKind() == "Namespace" {
						opts.DryRun = nil // namespaced objects can only be dry-run into a namespace that exists
					}
					if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts); err != nil {
						t.Errorf("%s/%s on %s: %s rejected: %v", ex, d.Name, mesh, ObjectID(o), err)
					}
					checked++
				}
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d objects were checked; the examples should render many more", checked)
	}
	t.Logf("%d rendered objects accepted by kube-apiserver", checked)
}
