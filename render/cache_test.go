package render

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshcd/meshcd/schema"
)

// cacheFleet writes a repo with two designs: a uses a kustomize base in a shared folder outside
// its own, b only its own folder.
func cacheFleet(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"clusters/c.cue":                       "cluster: c: {labels: env: \"prod\", mesh: \"istio\"}\n",
		"designs/a/design.cue":                 "design: a: {namespace: \"a\", targets: {}, manifests: [{kustomize: \"./overlay\"}]}\n",
		"designs/a/overlay/kustomization.yaml": "resources: [../../../shared/base]\nnamePrefix: a-\n",
		"shared/base/kustomization.yaml":       "resources: [cm.yaml]\n",
		"shared/base/cm.yaml":                  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {k: v1}\n",
		"designs/b/design.cue":                 "design: b: {namespace: \"b\", targets: {}, manifests: [{yaml: \"./raw\"}]}\n",
		"designs/b/raw/cm.yaml":                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: v1}\n",
	}
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func renderAll(t *testing.T, dir, revision string, cache *Cache) map[string]*Bundle {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	fleet, designs, err := schema.Load(t.Context(), root.FS(), schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	repo := NewRepo(root.FS())
	out := map[string]*Bundle{}
	for i := range designs {
		for _, c := range designs[i].TargetClusters(fleet) {
			b, err := Render(t.Context(), &designs[i], &c, Options{Revision: revision, Repo: repo, Cache: cache})
			if err != nil {
				t.Fatal(err)
			}
			out[designs[i].Name] = b
		}
	}
	return out
}

func TestCacheRendersOnlyWhatChanged(t *testing.T) {
	dir := cacheFleet(t)
	cache := NewCache(100)
	first := renderAll(t, dir, "r1", cache)
	if s := cache.Stats(); s.Misses != 2 || s.Hits != 0 {
		t.Fatalf("cold: %+v, want 2 misses", s)
	}

	// Same content at a new revision: both from the cache, restamped, same digests.
	second := renderAll(t, dir, "r2", cache)
	if s := cache.Stats(); s.Hits != 2 {
		t.Fatalf("warm: %+v, want 2 hits", s)
	}
	for name, b := range second {
		if b.Digest != first[name].Digest || b.Revision != "r2" {
			t.Errorf("%s from cache: digest %s (was %s), revision %s", name, b.Digest, first[name].Digest, b.Revision)
		}
	}
	// A caller changing a bundle does not change what the cache holds.
	second["b"].Objects[0].SetName("mutated")

	// A change in the shared base, outside design a's folder, re-renders a only.
	if err := os.WriteFile(filepath.Join(dir, "shared/base/cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {k: v2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := renderAll(t, dir, "r3", cache)
	if s := cache.Stats(); s.Misses != 3 || s.Hits != 3 {
		t.Fatalf("after changing shared/base: %+v, want a re-rendered (3 misses) and b cached (3 hits)", s)
	}
	if third["a"].Digest == first["a"].Digest {
		t.Error("a's digest did not change with its base")
	}
	if third["b"].Digest != first["b"].Digest || third["b"].Objects[0].GetName() == "mutated" {
		t.Errorf("b changed: %s vs %s, %s", third["b"].Digest, first["b"].Digest, third["b"].Objects[0].GetName())
	}

	// A change in b's own folder re-renders b only.
	if err := os.WriteFile(filepath.Join(dir, "designs/b/raw/cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: v2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	renderAll(t, dir, "r4", cache)
	if s := cache.Stats(); s.Misses != 4 || s.Hits != 4 {
		t.Fatalf("after changing designs/b: %+v, want 4 misses and 4 hits", s)
	}
}

func TestCacheKeysOnTheCluster(t *testing.T) {
	fleet, designs, files := loadExample(t, "shop")
	cache := NewCache(10)
	c := fleet.Clusters[0]
	repo := NewRepo(files)
	if _, err := Render(t.Context(), &designs[0], &c, Options{Repo: repo, Cache: cache}); err != nil {
		t.Fatal(err)
	}
	c.Values = map[string]any{"gateHost": "elsewhere"}
	if _, err := Render(t.Context(), &designs[0], &c, Options{Repo: repo, Cache: cache}); err != nil {
		t.Fatal(err)
	}
	if s := cache.Stats(); s.Misses != 2 {
		t.Fatalf("changing the cluster's values: %+v, want a miss", s)
	}
}

// TestCacheKeepsFewBundlesPerDesign: a design rendered for one cluster at many contents keeps
// at most PerSlot bundles, so a daemon following a busy repo does not grow with every commit;
// the newest stay and hit.
func TestCacheKeepsFewBundlesPerDesign(t *testing.T) {
	fleet, designs, files := loadExample(t, "shop")
	cache := NewCache(1000)
	c := fleet.Clusters[0]
	repo := NewRepo(files)
	for i := range 10 {
		c.Values = map[string]any{"gateHost": fmt.Sprintf("host-%d", i)}
		if _, err := Render(t.Context(), &designs[0], &c, Options{Repo: repo, Cache: cache}); err != nil {
			t.Fatal(err)
		}
	}
	if n := cache.Len(); n != PerSlot {
		t.Fatalf("10 contents of one design on one cluster: %d bundles kept, want %d", n, PerSlot)
	}
	before := cache.Stats()
	if _, err := Render(t.Context(), &designs[0], &c, Options{Repo: repo, Cache: cache}); err != nil {
		t.Fatal(err)
	}
	if s := cache.Stats(); s.Hits != before.Hits+1 {
		t.Errorf("the newest content was not kept: %+v", s)
	}
}
