package render

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
)

// TestObjectInTwoDesignsIsRefused: base and istiod share istio-system (base owns it) and both
// render the ServiceAccount istio-reader. Only base renders the Namespace; the
// ServiceAccount is refused for both designs, naming the other; a third design that shares
// nothing is untouched.
func TestObjectInTwoDesignsIsRefused(t *testing.T) {
	dir := t.TempDir()
	sa := "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: istio-reader}\n"
	files := map[string]string{
		"clusters/fleet.cue":         `cluster: east: {labels: {env: "prod"}, mesh: "istio"}`,
		"designs/base/design.cue":    "design: base: {namespace: \"istio-system\", ownsNamespace: true, manifests: [{yaml: \"./raw\"}]}\n",
		"designs/base/raw/sa.yaml":   sa,
		"designs/istiod/design.cue":  "design: istiod: {namespace: \"istio-system\", manifests: [{yaml: \"./raw\"}]}\n",
		"designs/istiod/raw/sa.yaml": sa,
		"designs/istiod/raw/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\n",
		"designs/shop/design.cue":    "design: shop: {namespace: \"shop\", manifests: [{yaml: \"./raw\"}]}\n",
		"designs/shop/raw/sa.yaml":   sa,
	}
	if err := testenv.WriteFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	fsys := os.DirFS(dir)
	fl, designs, err := schema.Load(context.Background(), fsys, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	var bundles []*Bundle
	namespaces := map[string]int{}
	for i := range designs {
		c := fl.Clusters[0]
		b, err := Render(context.Background(), &designs[i], &c, Options{Revision: "r1", Repo: NewRepo(fsys)})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range b.Objects {
			if o.GetKind() == "Namespace" {
				namespaces[o.GetName()+" by "+b.Design]++
			}
		}
		bundles = append(bundles, b)
	}
	if namespaces["istio-system by base"] != 1 || namespaces["istio-system by istiod"] != 0 || namespaces["shop by shop"] != 1 {
		t.Errorf("Namespaces rendered: %v (istio-system by base alone, shop by shop)", namespaces)
	}
	got := Collisions(bundles)
	if len(got) != 2 {
		t.Fatalf("want base and istiod refused on east, got %v", got)
	}
	for key, other := range map[string]string{"base/east": "istiod", "istiod/east": "base"} {
		err := got[key]
		if err == nil || !strings.Contains(err.Error(), "ServiceAccount istio-system/istio-reader is also rendered by design "+other) {
			t.Errorf("%s: %v", key, err)
		}
	}
}
