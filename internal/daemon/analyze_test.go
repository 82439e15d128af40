package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
)

// TestIstioAnalyzersAcceptTheTestsDesigns runs Istio's analyzers over what the designs these
// end-to-end tests push render to on their Istio cluster: the shop design with its gates, and
// the named designs of the controller tests. No error and no warning.
func TestIstioAnalyzersAcceptTheTestsDesigns(t *testing.T) {
	files := map[string][]byte{
		"clusters/fleet.cue":           []byte(fleetFiles),
		"designs/shop/design.cue":      []byte(designWith("shop", 90, "http://127.0.0.1:1/", true)),
		"designs/shop/raw/config.yaml": []byte(settings),
	}
	for name, data := range named("alpha", everywhere, 70, "EUR", changeGate("http://127.0.0.1:1/", "1s")) {
		files[name] = data
	}
	dir := t.TempDir()
	for name, data := range files {
		must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	fsys := os.DirFS(dir)
	fl, designs, err := schema.Load(t.Context(), fsys, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	var objs []*render.Bundle
	for i := range designs {
		for _, c := range designs[i].TargetClusters(fl) {
			if c.Mesh != schema.MeshIstio {
				continue
			}
			b, err := render.Render(t.Context(), &designs[i], &c, render.Options{Revision: "r1", Repo: render.NewRepo(fsys)})
			if err != nil {
				t.Fatal(err)
			}
			objs = append(objs, b)
		}
	}
	if len(objs) != 2 {
		t.Fatalf("%d Istio renders, want 2", len(objs))
	}
	var all = objs[0].Objects
	all = append(all, objs[1].Objects...)
	msgs, err := testenv.IstioAnalyze(t.Context(), all)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Level != "Info" {
			t.Errorf("istioctl analyze: %s", m)
		}
	}
}
