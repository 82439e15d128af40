package benchfleet

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
)

// The daemon benchmarks' fleet: a design per repo on an Istio, a Linkerd and a Gateway API
// cluster, whose stable weight tells which push is live.
const FleetCUE = `
cluster: east: {labels: {env: "prod"}, mesh: "istio"}
cluster: west: {labels: {env: "prod"}, mesh: "linkerd"}
cluster: central: {labels: {env: "prod"}, mesh: "gateway-api"}
`

// Design is a design named name with the stable version at weight, and a gate loading gateURL
// for ten minutes when gateURL is set.
func Design(name string, weight int, gateURL string) string {
	gate := ""
	if gateURL != "" {
		gate = fmt.Sprintf(`gates: soak: {url: %q, load: {qps: 50, connections: 2, duration: "10m"}, thresholds: {p99: "5s"}, triggers: ["change"]}`, gateURL)
	}
	return fmt.Sprintf(`design: %q: {
	namespace: %q
	targets: matchLabels: env: "prod"
	services: checkout: {
		port: 8080
		versions: {stable: labels: version: "v1", canary: labels: version: "v2"}
		routes: [{to: {stable: %d, canary: %d}}]
	}
	manifests: [{yaml: "./raw"}]
	%s
}`, name, name, weight, 100-weight, gate)
}

// Files is a fleet repo holding Design.
func Files(name string, weight int, gateURL string) map[string][]byte {
	return map[string][]byte{
		"clusters/fleet.cue":                 []byte(FleetCUE),
		"designs/" + name + "/design.cue":    []byte(Design(name, weight, gateURL)),
		"designs/" + name + "/raw/conf.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {k: v}\n"),
	}
}

// Push pushes like a person does while meshcd commits status to the same branch: a push that
// lost the race is fetched and tried again.
func Push(ctx context.Context, r *testenv.Repo, files map[string][]byte, msg string) error {
	var err error
	for range 20 {
		if _, err = r.Push(ctx, "main", files, msg); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

var (
	vsGVK    = k8sschema.FromAPIVersionAndKind("networking.istio.io/v1", "VirtualService")
	routeGVK = k8sschema.FromAPIVersionAndKind("gateway.networking.k8s.io/v1", "HTTPRoute")
)

// LiveWeight is the stable version's weight as the cluster serves it (-1 when absent), read
// from a watch cache of the routes, so looking costs the apiservers nothing.
func LiveWeight(ctx context.Context, c *fleet.Cluster, cluster, ns string) int {
	gvk := routeGVK
	if cluster == "east" {
		gvk = vsGVK
	}
	if _, err := c.Live.Watch(ctx, gvk); err != nil {
		return -1
	}
	var o *unstructured.Unstructured
	for _, obj := range c.Live.Objects() {
		if obj.GroupVersionKind() == gvk && obj.GetNamespace() == ns {
			o = obj
			break
		}
	}
	if o == nil {
		return -1
	}
	if cluster == "east" {
		return subsetWeight(o)
	}
	rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
	for _, r := range rules {
		refs, _ := r.(map[string]any)["backendRefs"].([]any)
		for _, ref := range refs {
			if rm := ref.(map[string]any); rm["name"] == "checkout-stable" {
				w, _ := rm["weight"].(int64)
				return int(w)
			}
		}
	}
	return -1
}

func subsetWeight(o *unstructured.Unstructured) int {
	http, _, _ := unstructured.NestedSlice(o.Object, "spec", "http")
	for _, h := range http {
		routes, _ := h.(map[string]any)["route"].([]any)
		for _, r := range routes {
			rm := r.(map[string]any)
			if dest, _ := rm["destination"].(map[string]any); dest["subset"] == "stable" {
				w, _ := rm["weight"].(int64)
				return int(w)
			}
		}
	}
	return -1
}

// FreeAddr is a loopback address nothing listens on yet.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
