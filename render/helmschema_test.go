package render

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestHelmSchemaReachesNothing: a chart's values.schema.json is checked as helm install does
// (a wrong value fails the render), but a $ref to a host file or a URL is refused and named:
// the file's content appears nowhere and the URL is never fetched. A dependency that
// Chart.yaml names and charts/ lacks fails too, as helm install makes it.
func TestHelmSchemaReachesNothing(t *testing.T) {
	canary := filepath.Join(t.TempDir(), "host-secret.json")
	must(t, os.WriteFile(canary, []byte(`{"description": "CANARY-7f3a host file content"}`), 0o600))
	var fetched atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		fmt.Fprint(w, `{"type": "object"}`)
	}))
	defer srv.Close()
	chart := func(schema, chartYAML string) *repoFiles {
		root := t.TempDir()
		dir := filepath.Join(root, "chart")
		must(t, os.MkdirAll(filepath.Join(dir, "templates"), 0o755))
		if chartYAML == "" {
			chartYAML = "apiVersion: v2\nname: app\nversion: 0.1.0\n"
		}
		write(t, filepath.Join(dir, "Chart.yaml"), chartYAML)
		write(t, filepath.Join(dir, "values.yaml"), "replicas: 1\n")
		write(t, filepath.Join(dir, "templates/cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {replicas: {{ .Values.replicas | quote }}}\n")
		if schema != "" {
			write(t, filepath.Join(dir, "values.schema.json"), schema)
		}
		return openRepo(t, root)
	}
	for _, tc := range []struct {
		name, schema, chartYAML string
		values                  map[string]any
		wantErr                 string
	}{
		{"a schema the values meet", `{"type": "object", "properties": {"replicas": {"type": "integer"}}}`, "", nil, ""},
		{"a schema the values break", `{"type": "object", "properties": {"replicas": {"type": "integer"}}}`, "", map[string]any{"replicas": "three"}, "do not match its values.schema.json"},
		{"a $ref to a host file", `{"type": "object", "properties": {"replicas": {"$ref": "file://` + canary + `"}}}`, "", nil, "meshcd follows no $ref"},
		{"a $ref to a URL", `{"type": "object", "properties": {"replicas": {"$ref": "` + srv.URL + `/schema.json"}}}`, "", nil, "meshcd follows no $ref"},
		{"a dependency not vendored", "", "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies: [{name: redis, version: 1.0.0, repository: https://charts.example.com}]\n", nil, "missing in charts/ directory: redis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := tc.values
			if vals == nil {
				vals = map[string]any{}
			}
			objs, _, err := renderHelm(context.Background(), chart(tc.schema, tc.chartYAML), "chart", helmRelease{name: "app", namespace: "app", values: vals})
			if tc.wantErr == "" {
				if err != nil || len(objs) != 1 {
					t.Fatalf("%d objects, %v", len(objs), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v; want one saying %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "CANARY-7f3a") {
				t.Fatalf("the render error holds the host file's content: %v", err)
			}
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("the schema's URL was fetched %d times", n)
	}
}

// FuzzHelmValues: whatever values a design gives a chart (as YAML), rendering it returns
// objects or an error; it never panics, and a chart's schema still reaches nothing.
func FuzzHelmValues(f *testing.F) {
	for _, seed := range []string{"replicas: 3\n", "replicas: {a: [1, 2]}\n", "env: {A: ''}\n", "a: &x [*x]\n", "replicas: null\n"} {
		f.Add([]byte(seed))
	}
	root := f.TempDir()
	dir := filepath.Join(root, "chart")
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		f.Fatal(err)
	}
	for p, data := range map[string]string{
		"Chart.yaml":         "apiVersion: v2\nname: app\nversion: 0.1.0\n",
		"values.yaml":        "replicas: 1\nenv: {}\n",
		"values.schema.json": `{"type": "object", "properties": {"replicas": {"type": ["integer", "string"]}}}`,
		"templates/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata:\n  replicas: {{ .Values.replicas | quote }}\n  {{- range $k, $v := .Values.env }}\n  {{ $k }}: {{ $v | quote }}\n  {{- end }}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	root2, err := os.OpenRoot(root)
	if err != nil {
		f.Fatal(err)
	}
	defer root2.Close()
	repo, err := copyRepo(root2.FS())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var vals map[string]any
		if yaml.Unmarshal(data, &vals) != nil || vals == nil {
			return
		}
		_, _, _ = renderHelm(context.Background(), repo, "chart", helmRelease{name: "app", namespace: "app", values: vals})
	})
}
