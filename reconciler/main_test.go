package reconciler

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
)

// env is three real clusters (etcd + kube-apiserver with the mesh CRDs), started once for
// the package: east runs istio, west linkerd, central gateway-api.
var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	var err error
	env, err = testenv.Start(ctx, testenv.Options{Names: []string{"east", "west", "central"}})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting test clusters:", err)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

// clusterFiles is the fleet repo's clusters, one per mesh.
const clusterFiles = `
cluster: east: {labels: {env: "prod"}, mesh: "istio"}
cluster: west: {labels: {env: "prod"}, mesh: "linkerd"}
cluster: central: {labels: {env: "prod"}, mesh: "gateway-api"}
`

// shopDesign is a design with two services, a folder of plain YAML and whatever extra CUE
// the test adds; designName keeps tests apart (each has its own namespace).
func shopDesign(name, extra string) map[string]string {
	return map[string]string{
		"clusters/fleet.cue": clusterFiles,
		"designs/" + name + "/design.cue": fmt.Sprintf(`design: %q: {
	namespace: %q
	targets: matchLabels: env: "prod"
	services: checkout: {
		port: 8080
		versions: {stable: labels: version: "v1", canary: labels: version: "v2"}
		routes: [{to: {stable: 90, canary: 10}}]
		timeout: "5s"
	}
	services: frontend: {
		port: 80
		versions: stable: labels: version: "v1"
		routes: [{to: stable: 100}]
	}
	manifests: [{yaml: "./raw"}]
	%s
}`, name, name, extra),
		"designs/" + name + "/raw/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {currency: EUR}\n",
	}
}

// renderFleet writes the files as a fleet repo and renders the named design for every
// cluster it targets, keyed by cluster name.
func renderFleet(t *testing.T, files map[string]string, design, revision string) (map[string]*render.Bundle, *schema.Design) {
	t.Helper()
	fsys := os.DirFS(writeRepo(t, files))
	fl, designs, err := schema.Load(t.Context(), fsys, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*render.Bundle{}
	for i := range designs {
		d := &designs[i]
		if d.Name != design {
			continue
		}
		for _, c := range d.TargetClusters(fl) {
			b, err := render.Render(t.Context(), d, &c, render.Options{Revision: revision, Repo: render.NewRepo(fsys)})
			if err != nil {
				t.Fatal(err)
			}
			out[c.Name] = b
		}
		return out, d
	}
	t.Fatalf("no design %s", design)
	return nil, nil
}

// connect returns fresh meshcd clients for every test cluster, as a restarted daemon has.
func connect(t *testing.T) map[string]*fleet.Cluster {
	t.Helper()
	out := map[string]*fleet.Cluster{}
	for _, tc := range env.Clusters {
		c, err := fleet.Connect(schema.Cluster{Name: tc.Name}, tc.Config(), fleet.DefaultClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Live.Stop)
		out[tc.Name] = c
	}
	return out
}

// options are the default sync options with the design's policy.
func options(d *schema.Design) SyncOptions {
	o := DefaultSyncOptions()
	o.Policy = PolicyFor(d.Sync)
	return o
}

// jobs pairs each bundle with its cluster.
func jobs(clusters map[string]*fleet.Cluster, bundles map[string]*render.Bundle, opts SyncOptions) []Job {
	var out []Job
	for _, name := range []string{"east", "west", "central"} {
		if b, ok := bundles[name]; ok {
			out = append(out, Job{Cluster: clusters[name], Bundle: b, Options: opts})
		}
	}
	return out
}

// exists reports whether the object is in the cluster, asking the apiserver directly.
func exists(t *testing.T, c *fleet.Cluster, apiVersion, kind, namespace, name string) bool {
	t.Helper()
	gvk := k8sschema.FromAPIVersionAndKind(apiVersion, kind)
	m, err := c.Live.Mapping(gvk)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resource(m, namespace).Get(t.Context(), name, metav1.GetOptions{})
	return err == nil
}

// apiserverRequests reads the apiserver's own apiserver_request_total, summed by verb, for
// resource requests only (its /metrics endpoint itself is not counted).
func apiserverRequests(t *testing.T, c *fleet.Cluster) map[string]float64 {
	t.Helper()
	tc := env.Cluster(c.Name)
	cl, err := fleet.Connect(schema.Cluster{Name: c.Name}, tc.Config(), fleet.DefaultClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rawGet(t, cl, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(raw, "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || strings.Contains(line, `resource=""`) {
			continue
		}
		verb := between(line, `verb="`, `"`)
		var v float64
		fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
		out[verb] += v
	}
	return out
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	j := strings.Index(s, end)
	if j < 0 {
		return s
	}
	return s[:j]
}

func rawGet(t *testing.T, c *fleet.Cluster, path string) (string, error) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return "", err
	}
	data, err := cs.Discovery().RESTClient().Get().AbsPath(path).DoRaw(t.Context())
	return string(data), err
}

func get(t *testing.T, c *fleet.Cluster, apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	gvk := k8sschema.FromAPIVersionAndKind(apiVersion, kind)
	m, err := c.Live.Mapping(gvk)
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Resource(m, namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}
