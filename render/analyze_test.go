package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/schema"
	"sigs.k8s.io/yaml"
)

// explainedIstioWarnings are istioctl analyze warnings meshcd leaves in its Istio renders on
// purpose, by code; the README explains each one (checked below). Empty today: every render
// of the examples analyzes clean.
var explainedIstioWarnings = map[string]bool{}

// TestIstioAnalyzersAcceptEveryIstioRender runs Istio's own analyzers (istioctl analyze, built
// from the istio.io/istio module by make testbin) over every Istio render of examples/: each
// example's designs for every cluster running Istio as mesh or ingress, and each design as if
// its clusters ran Istio for both, all of one cluster's objects analyzed together so references
// across designs (a claim's route on the owner's Gateway) are checked. No error, and no warning
// the README does not explain.
func TestIstioAnalyzersAcceptEveryIstioRender(t *testing.T) {
	istioctl := testBinary(t, "istioctl")
	dir := t.TempDir()
	var files []string
	for _, ex := range examples {
		fleet, designs, fsys := loadExample(t, ex)
		perCluster := map[string][]byte{}
		for i := range designs {
			d := &designs[i]
			clusters := []schema.Cluster{asMesh(t, fleet, d, schema.MeshIstio)}
			if d.Ingress != nil {
				clusters[0].Ingress = "istio"
			}
			for _, c := range d.TargetClusters(fleet) {
				if c.Mesh == schema.MeshIstio || c.Ingress == "istio" {
					clusters = append(clusters, c)
				}
			}
			for _, c := range clusters {
				b, err := Render(t.Context(), d, &c, Options{Revision: "0123abc", Repo: NewRepo(fsys)})
				var rerr *Error
				if errors.As(err, &rerr) {
					continue // a feature Istio cannot express; the golden files record it
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range b.Objects {
					data, err := yaml.Marshal(o.Object)
					if err != nil {
						t.Fatal(err)
					}
					perCluster[c.Name] = append(append(perCluster[c.Name], "---\n"...), data...)
				}
			}
		}
		for _, name := range slices.Sorted(maps.Keys(perCluster)) {
			path := filepath.Join(dir, ex+"-"+name+".yaml")
			if err := os.WriteFile(path, perCluster[name], 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, path)
		}
	}
	if len(files) < 10 {
		t.Fatalf("only %d Istio renders; the examples make more", len(files))
	}
	for _, f := range files {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		var out, errOut bytes.Buffer
		cmd := exec.CommandContext(ctx, istioctl, "analyze", "--use-kube=false", "-A", "-o", "json", "--failure-threshold", "Error", f)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		runErr := cmd.Run()
		cancel()
		var msgs []struct {
			Code    string `json:"code"`
			Level   string `json:"level"`
			Origin  string `json:"origin"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(out.Bytes(), &msgs); err != nil {
			t.Fatalf("istioctl analyze %s: %v (%v): %s%s", filepath.Base(f), err, runErr, out.String(), errOut.String())
		}
		for _, m := range msgs {
			if m.Level == "Info" || (m.Level == "Warning" && explainedIstioWarnings[m.Code]) {
				continue
			}
			t.Errorf("%s: istioctl analyze: %s [%s] %s: %s", filepath.Base(f), m.Level, m.Code, m.Origin, m.Message)
		}
		if runErr != nil && len(msgs) == 0 {
			t.Errorf("istioctl analyze %s failed: %v: %s", filepath.Base(f), runErr, errOut.String())
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for code := range explainedIstioWarnings {
		if !strings.Contains(string(readme), code) {
			t.Errorf("warning %s is left in Istio renders, but the README does not explain it", code)
		}
	}
	t.Logf("%d Istio renders analyzed", len(files))
}

// TestIstioAnalyzersCatchWhatTheyShould keeps the check above honest: a VirtualService whose
// Gateway and subset exist nowhere is an error to the same analyzers.
func TestIstioAnalyzersCatchWhatTheyShould(t *testing.T) {
	istioctl := testBinary(t, "istioctl")
	f := filepath.Join(t.TempDir(), "bad.yaml")
	bad := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad, namespace: shop}\n" +
		"spec: {hosts: [www.example.com], gateways: [edge/ingress], http: [{route: [{destination: {host: checkout.shop.svc.cluster.local, subset: v9}}]}]}\n"
	if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), istioctl, "analyze", "--use-kube=false", "-A", f).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "IST0101") {
		t.Fatalf("istioctl analyze passed a VirtualService with a missing Gateway: %v\n%s", err, out)
	}
}

// testBinary finds a binary make testbin built.
func testBinary(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("MESHCD_TESTBIN")
	if dir == "" {
		dir = "../bin/testbin"
	}
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run make testbin (make test does): %v", bin, err)
	}
	return bin
}
