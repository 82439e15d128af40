package render

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/schema"
)

// helmCLI is the helm binary at meshcd's pinned Helm version, built by `make tools`.
func helmCLI(t *testing.T) string {
	t.Helper()
	p := os.Getenv("MESHCD_HELM")
	if p == "" {
		p, _ = filepath.Abs(filepath.Join("..", "bin", "tools"))
		matches, _ := filepath.Glob(filepath.Join(p, "helm-v*"))
		if len(matches) == 0 {
			t.Fatal("the helm CLI is needed to compare meshcd's Helm rendering with helm template: run make tools (or set MESHCD_HELM)")
		}
		p = matches[0]
	}
	return p
}

func openRepo(t *testing.T, dir string) *repoFiles {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	repo, err := copyRepo(root.FS())
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// TestHelmMatchesHelmTemplate renders real charts with meshcd and with the helm CLI of the
// same version: the objects must be the same (hooks aside: meshcd applies none).
func TestHelmMatchesHelmTemplate(t *testing.T) {
	helm := helmCLI(t)
	for _, tc := range []struct {
		name, repo, chart, release, namespace string
		valueFiles                            []string
		values                                map[string]any
		setFlags                              []string
	}{
		{"podinfo defaults", "testdata/podinfo", "charts/podinfo", "podinfo", "web", nil, nil, nil},
		{"podinfo prod values", "testdata/podinfo", "charts/podinfo", "podinfo", "web", []string{"charts/podinfo/values-prod.yaml"},
			map[string]any{"replicaCount": int64(3)}, []string{"--set", "replicaCount=3"}},
		{"platform example", "../examples/platform", "designs/checkout/charts/checkout", "checkout", "checkout", []string{"designs/checkout/values-dev.yaml"},
			map[string]any{"replicas": int64(2)}, []string{"--set", "replicas=2"}},
		// Istio's own charts, as examples/istio ships them (make istio-charts puts them there).
		{"istio base", "../examples/istio", "designs/istio-base/chart", "istio-base", "istio-system", nil,
			map[string]any{"defaultRevision": "default"}, []string{"--set", "defaultRevision=default"}},
		{"istiod canary revision", "../examples/istio", "designs/istiod/chart", "istiod-canary", "istio-system", nil,
			map[string]any{"revision": "canary", "pilot": map[string]any{"autoscaleEnabled": false}}, []string{"--set", "revision=canary,pilot.autoscaleEnabled=false"}},
		{"istio gateway", "../examples/istio", "designs/istio-ingress/chart", "istio-ingressgateway", "istio-system", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(tc.repo, tc.chart)); err != nil {
				t.Fatalf("%v (make istio-charts puts Istio's charts in examples/istio)", err)
			}
			repo := openRepo(t, tc.repo)
			vals, err := helmValues(repo, "", &schema.Helm{ValueFiles: tc.valueFiles, Values: tc.values}, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := renderHelm(context.Background(), repo, tc.chart, helmRelease{name: tc.release, namespace: tc.namespace, values: vals})
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"template", tc.release, filepath.Join(tc.repo, tc.chart), "--namespace", tc.namespace, "--include-crds", "--no-hooks", "--kube-version", DefaultKubeVersion()}
			for _, f := range tc.valueFiles {
				args = append(args, "--values", filepath.Join(tc.repo, f))
			}
			args = append(args, tc.setFlags...)
			cmd := exec.Command(helm, args...)
			cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helm %v: %v", args, err)
			}
			want, err := DecodeObjects(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) < 2 {
				t.Fatalf("helm template rendered %d objects", len(want))
			}
			if diff := cmp.Diff(byID(want), byID(got)); diff != "" {
				t.Errorf("meshcd vs helm template (-helm +meshcd):\n%s", diff)
			}
		})
	}
}

func TestHelmHooksAreLeftOutAndNamed(t *testing.T) {
	repo := openRepo(t, "testdata/podinfo")
	objs, hooks, err := renderHelm(context.Background(), repo, "charts/podinfo", helmRelease{name: "podinfo", namespace: "web", values: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) == 0 || !strings.Contains(strings.Join(hooks, " "), "(test)") {
		t.Fatalf("hooks = %v, want podinfo's test hooks named", hooks)
	}
	for _, o := range objs {
		if _, isHook := o.GetAnnotations()["helm.sh/hook"]; isHook {
			t.Fatalf("hook %s is in the rendered objects", ObjectID(o))
		}
	}
}

// TestHelmChartBombs refuses charts that would exhaust memory: a folder over the size limit,
// and a packaged sub-chart that decompresses to far more than it weighs.
func TestHelmChartBombs(t *testing.T) {
	dir := t.TempDir()
	write := func(p string, data []byte) {
		t.Helper()
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	chartYAML := []byte("apiVersion: v2\nname: bomb\nversion: 0.1.0\n")
	// Three 7 MiB files: each under the per-file limit, together over the chart limit.
	write("big/Chart.yaml", chartYAML)
	for _, n := range []string{"a", "b", "c"} {
		write("big/files/"+n+".txt", bytes.Repeat([]byte("x"), 7<<20))
	}
	// A sub-chart archive of a few hundred KiB that unpacks to 300 MiB.
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for i, size := range []int64{int64(len(chartYAML)), 300 << 20} {
		name := []string{"sub/Chart.yaml", "sub/templates/huge.yaml"}[i]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			tw.Write(chartYAML)
			continue
		}
		chunk := bytes.Repeat([]byte{'#'}, 1<<20)
		for range 300 {
			tw.Write(chunk)
		}
	}
	tw.Close()
	zw.Close()
	write("nested/Chart.yaml", chartYAML)
	write("nested/charts/sub-0.1.0.tgz", gz.Bytes())

	repo := openRepo(t, dir)
	for _, tc := range []struct{ chart, want string }{
		{"big", "helm chart big is larger than 20 MiB"},
		{"nested", "decompressed"},
	} {
		_, _, err := renderHelm(context.Background(), repo, tc.chart, helmRelease{name: "x", namespace: "x", values: map[string]any{}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("chart %s: err = %v, want it to mention %q", tc.chart, err, tc.want)
		}
	}
}
