package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestKustomizeMatchesKubectl renders real kustomize bases with meshcd and with
// `kubectl kustomize`: the objects must be the same.
func TestKustomizeMatchesKubectl(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatal("kubectl is needed to compare meshcd's kustomize rendering with kubectl kustomize")
	}
	for _, tc := range []struct{ repo, dir string }{
		{"testdata/podinfo", "kustomize"},
		{"../examples/platform", "designs/checkout/base"},
	} {
		t.Run(tc.repo, func(t *testing.T) {
			root, err := os.OpenRoot(tc.repo)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			repo, err := copyRepo(root.FS())
			if err != nil {
				t.Fatal(err)
			}
			got, err := renderKustomize(repo, tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("kubectl", "kustomize", filepath.Join(tc.repo, tc.dir)).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize: %v", err)
			}
			want, err := DecodeObjects(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Fatal("kubectl kustomize rendered nothing")
			}
			if diff := cmp.Diff(byID(want), byID(got)); diff != "" {
				t.Errorf("meshcd vs kubectl kustomize (-kubectl +meshcd):\n%s", diff)
			}
		})
	}
}

func byID(objs []*unstructured.Unstructured) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, o := range objs {
		out[ObjectID(o)] = o.Object
	}
	return out
}

// TestKustomizeStaysInsideTheRepo builds kustomizations that try to leave the repo or run
// code. Each fails with a clear error that shows no content of the file it reached for.
func TestKustomizeStaysInsideTheRepo(t *testing.T) {
	dir := t.TempDir()
	write := func(p, data string) {
		t.Helper()
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kustomization := func(name, body string) string {
		write(filepath.Join(name, "kustomization.yaml"), body)
		return name
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd.yaml")); err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(dir, "big", "big.yaml"))
	if err != nil {
		if err := os.MkdirAll(filepath.Join(dir, "big"), 0o755); err != nil {
			t.Fatal(err)
		}
		big, err = os.Create(filepath.Join(dir, "big", "big.yaml"))
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := big.Truncate(200 << 20); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	big.Close()

	tests := []struct {
		name, dir, want string
	}{
		{"symlink to /etc/passwd", kustomization("link", "resources: [../passwd.yaml]\n"), "passwd.yaml is a symbolic link"},
		{"dot-dot out of the repo", kustomization("dotdot", "resources: [../../../../../../etc/passwd]\n"), "etc/passwd"},
		{"absolute path", kustomization("abs", "resources: [/etc/passwd]\n"), "/etc/passwd"},
		{"remote base", kustomization("remote", "resources:\n- github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1\n"), "is a remote base or URL"},
		{"URL resource", kustomization("url", "resources: [https://raw.githubusercontent.com/x/y/main/deploy.yaml]\n"), "is a remote base or URL"},
		{"exec function", kustomization("exec", "generators: [gen.yaml]\n"), "gen"},
		{"helm inflation", kustomization("helm", "helmCharts: [{name: x, repo: https://charts.example.com, version: 1.0.0}]\n"), "helm"},
		{"200 MiB file", kustomization("big", "resources: [big.yaml]\n"), "big/big.yaml is 200.0 MiB, over the 8 MiB limit"},
	}
	write("exec/gen.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gen\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: /bin/sh\n")
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	repo, err := copyRepo(root.FS())
	if err != nil {
		t.Fatal(err)
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	firstLine, _, _ := strings.Cut(string(passwd), "\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := renderKustomize(repo, tc.dir)
			if err == nil {
				names := []string{}
				for _, o := range objs {
					names = append(names, ObjectID(o))
				}
				sort.Strings(names)
				t.Fatalf("rendered %v, want an error", names)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if firstLine != "" && strings.Contains(err.Error(), firstLine) {
				t.Errorf("error shows /etc/passwd's content: %v", err)
			}
		})
	}
}
