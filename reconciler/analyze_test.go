package reconciler

import (
	"testing"

	"github.com/meshcd/meshcd/internal/testenv"
)

// TestIstioAnalyzersAcceptTheTestsDesigns runs Istio's analyzers over what this package's test
// design renders to on its Istio cluster: no error and no warning.
func TestIstioAnalyzersAcceptTheTestsDesigns(t *testing.T) {
	bundles, _ := renderFleet(t, shopDesign("analyzed", `sync: prune: true`), "analyzed", "r1")
	msgs, err := testenv.IstioAnalyze(t.Context(), bundles["east"].Objects)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Level != "Info" {
			t.Errorf("istioctl analyze: %s", m)
		}
	}
	if len(bundles["east"].Objects) < 4 {
		t.Fatalf("the Istio render has %d objects", len(bundles["east"].Objects))
	}
}
