package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func TestRenderCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"render", "../../examples/shop", "--cluster", "east", "--revision", "abc123"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	text := out.String()
	for _, want := range []string{"# design shop on cluster east, revision abc123", "kind: VirtualService", "kind: PeerAuthentication"} {
		if !strings.Contains(text, want) {
			t.Errorf("render output lacks %q", want)
		}
	}
	if strings.Contains(text, "cluster west") {
		t.Error("--cluster east also printed west")
	}

	// The output is a stream of Kubernetes YAML documents, as kubectl apply -f - reads it.
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	n := 0
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("document %d does not parse: %v", n+1, err)
		}
		if obj == nil {
			continue
		}
		if obj["apiVersion"] == nil || obj["kind"] == nil {
			t.Fatalf("document %d has no apiVersion or kind: %v", n+1, obj)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("decoded %d objects, want the namespace, routes and policies", n)
	}
}

func TestRenderJSONAndWarnings(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"render", "../../examples/fleet", "--design", "payments", "-o", "json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var bundles []struct {
		Design, Cluster, Digest string
		Objects                 []map[string]any
	}
	if err := json.Unmarshal(out.Bytes(), &bundles); err != nil {
		t.Fatal(err)
	}
	if len(bundles) != 5 {
		t.Fatalf("payments targets 5 clusters, got %d bundles", len(bundles))
	}
	if !strings.Contains(errOut.String(), "warning: design payments on cluster euw1-prod: services.api.retries: gateway-api (standard channel) has no retries") {
		t.Errorf("stderr lacks the gateway-api retries warning:\n%s", errOut.String())
	}
}

func TestRenderFailures(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"render", "../../examples/shop", "--design", "nope"}, 2, `no design named "nope"`},
		{[]string{"render", "../../examples/shop", "--cluster", "nope"}, 2, `no cluster named "nope"`},
		{[]string{"render", "../../examples/invalid/weights-not-100"}, 1, "weights sum to 90, want 100"},
	} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("meshcd %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}

func TestRenderMasksSecrets(t *testing.T) {
	dir := t.TempDir()
	for p, data := range map[string]string{
		"clusters/c.cue":           "cluster: c: {labels: env: \"prod\", mesh: \"istio\"}\n",
		"designs/db/design.cue":    "design: db: {namespace: \"db\", targets: {}, manifests: [{yaml: \"./raw\"}]}\n",
		"designs/db/raw/auth.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: auth}\nstringData: {password: hunter2-s3cret}\ndata: {token: dG9rZW4tdmFsdWU=}\n",
	} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, output := range []string{"yaml", "json"} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), []string{"render", dir, "-o", output}, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		all := out.String() + errOut.String()
		if strings.Contains(all, "hunter2-s3cret") || strings.Contains(all, "dG9rZW4tdmFsdWU=") {
			t.Fatalf("-o %s shows a secret value:\n%s", output, all)
		}
		if !strings.Contains(all, "kind") || !strings.Contains(all, "masked") {
			t.Fatalf("-o %s does not show the masked Secret:\n%s", output, all)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"render", dir, "--show-secrets"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "hunter2-s3cret") {
		t.Fatalf("--show-secrets: exit %d, output lacks the value", code)
	}
}

// TestRenderChartBombStopsAtItsBudget: `meshcd render` of a chart that builds a string far
// past the memory budget fails that design, naming the budget, within seconds: the chart is
// rendered in meshcd's worker process, not in the CLI's own.
func TestRenderChartBombStopsAtItsBudget(t *testing.T) {
	repo := t.TempDir()
	files := map[string]string{
		"clusters/east.cue":                    `cluster: east: {labels: env: "prod", mesh: "istio"}`,
		"designs/bomb/design.cue":              `design: bomb: {namespace: "bomb", manifests: [{helm: chart: "./chart"}]}`,
		"designs/bomb/chart/Chart.yaml":        "apiVersion: v2\nname: bomb\nversion: 0.1.0\n",
		"designs/bomb/chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  x: |\n    {{ len (repeat 30000000 \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\") }}\n",
	}
	for p, data := range files {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(repo, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(repo, p), []byte(data), 0o644))
	}
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(t.Context(), []string{"render", repo}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "design bomb on cluster east") || !strings.Contains(errOut.String(), "render needed more than 1024.0 MiB of memory") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if took := time.Since(start); took > time.Minute {
		t.Fatalf("the bomb took %s to fail", took)
	}
}
