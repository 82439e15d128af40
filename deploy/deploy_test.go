package deploy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestChartAndKustomizeBaseAreAccepted renders meshcd's Helm chart and kustomize base the way
// meshcd renders any design's manifests, and server-side dry-runs every object with strict
// field validation on a real kube-apiserver.
func TestChartAndKustomizeBaseAreAccepted(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	repo := t.TempDir()
	for _, d := range []string{"helm", "kustomize"} {
		if err := os.CopyFS(filepath.Join(repo, "designs", "meshcd-"+d), os.DirFS(".")); err != nil {
			t.Fatal(err)
		}
	}
	if err := testenv.WriteFiles(repo, map[string]string{
		"clusters/home.cue":                   `cluster: home: {labels: {env: "ops"}, mesh: "istio"}`,
		"designs/meshcd-helm/design.cue":      `design: "meshcd-helm": {namespace: "meshcd-system", ownsNamespace: true, manifests: [{helm: {chart: "./chart/meshcd", releaseName: "meshcd"}}]}`,
		"designs/meshcd-kustomize/design.cue": `design: "meshcd-kustomize": {namespace: "meshcd-system", manifests: [{kustomize: "./kustomize"}]}`,
	}); err != nil {
		t.Fatal(err)
	}
	fsys := os.DirFS(repo)
	fl, designs, err := schema.Load(ctx, fsys, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	env, err := testenv.Start(ctx, testenv.Options{Names: []string{"home"}, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	c, err := fleet.Connect(fl.Clusters[0], env.Clusters[0].Config(), fleet.DefaultClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Live.Stop()
	kinds := map[string]map[string]bool{}
	for i := range designs {
		d := &designs[i]
		b, err := render.Render(ctx, d, &fl.Clusters[0], render.Options{Revision: "test", Repo: render.NewRepo(fsys)})
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		kinds[d.Name] = map[string]bool{}
		for _, o := range b.Objects {
			kinds[d.Name][o.GetKind()] = true
			m, err := c.Live.Mapping(o.GroupVersionKind())
			if err != nil {
				t.Fatalf("%s: %s: %v", d.Name, render.ObjectID(o), err)
			}
			ri := c.Resource(m, o.GetNamespace())
			data, err := o.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			opts := metav1.PatchOptions{FieldManager: "meshcd-test", DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}
			if o.GetKind() == "Namespace" {
				opts.DryRun = nil // the namespaced objects are dry-run into it
			}
			if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts); err != nil {
				t.Errorf("%s: %s rejected: %v", d.Name, render.ObjectID(o), err)
			}
		}
	}
	for _, d := range []string{"meshcd-helm", "meshcd-kustomize"} {
		for _, k := range []string{"StatefulSet", "ServiceAccount", "ClusterRole", "Role", "ConfigMap", "Service"} {
			if !kinds[d][k] {
				t.Errorf("%s renders no %s", d, k)
			}
		}
	}
}
