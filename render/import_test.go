package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestImportIngressRoundTrips imports real-world shaped Ingress manifests into a design,
// renders it for a contour and a gateway-api cluster, and checks that both route every host
// and path to the same backend as the Ingress objects did.
func TestImportIngressRoundTrips(t *testing.T) {
	files, _ := filepath.Glob("testdata/ingress/*.yaml")
	var source []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := DecodeObjects(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		source = append(source, objs...)
	}
	imp, err := ImportIngress(source)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Warnings) != 1 || !strings.Contains(imp.Warnings[0], "pathType Exact") {
		t.Errorf("warnings = %q, want one about the Exact path", imp.Warnings)
	}
	design, err := imp.CUE("web")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	for p, data := range map[string][]byte{
		"clusters/edge.cue":      []byte("cluster: {\n\tcontour: {mesh: \"istio\", ingress: \"contour\"}\n\tgateway: {mesh: \"linkerd\", ingress: \"gateway-api\"}\n}\n"),
		"designs/web/design.cue": design,
	} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	fleet, designs, err := schema.Load(context.Background(), root.FS(), schema.DefaultLoadOptions())
	if err != nil {
		t.Fatalf("the imported design does not validate: %v\n%s", err, design)
	}
	want := routeTable(source)
	for _, c := range fleet.Clusters {
		b, err := Render(context.Background(), &designs[0], &c, Options{Repo: NewRepo(root.FS())})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, routeTable(b.Objects)); diff != "" {
			t.Errorf("%s (%s) routes differently from the Ingress objects (-ingress +rendered):\n%s", c.Name, c.Ingress, diff)
		}
	}
}

func TestImportRefusesMixedNamespaces(t *testing.T) {
	a := newObject("networking.k8s.io/v1", "Ingress", "a", "x", map[string]any{})
	b := newObject("networking.k8s.io/v1", "Ingress", "b", "y", map[string]any{})
	if _, err := ImportIngress([]*unstructured.Unstructured{a, b}); err == nil || !strings.Contains(err.Error(), "one namespace at a time") {
		t.Fatalf("err = %v", err)
	}
}

// routeTable is host and path prefix to backend service:port, the behaviour an import must keep.
func routeTable(objs []*unstructured.Unstructured) map[string]string {
	out := map[string]string{}
	for _, o := range objs {
		switch o.GetKind() {
		case "Ingress":
			rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
			for _, r := range rules {
				rm := r.(map[string]any)
				paths, _, _ := unstructured.NestedSlice(rm, "http", "paths")
				for _, p := range paths {
					pm := p.(map[string]any)
					svc, _, _ := unstructured.NestedString(pm, "backend", "service", "name")
					port, _, _ := unstructured.NestedInt64(pm, "backend", "service", "port", "number")
					out[fmt.Sprint(rm["host"], pm["path"])] = fmt.Sprintf("%s:%d", svc, port)
				}
			}
		case "HTTPRoute":
			hosts, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "hostnames")
			rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
			for _, r := range rules {
				rm := r.(map[string]any)
				matches, _ := rm["matches"].([]any)
				if len(matches) == 0 {
					continue // the plain-HTTP listener's redirect to https: no backend
				}
				path, _, _ := unstructured.NestedString(matches[0].(map[string]any), "path", "value")
				var backends []string
				refs, _ := rm["backendRefs"].([]any)
				for _, b := range refs {
					bm := b.(map[string]any)
					backends = append(backends, fmt.Sprintf("%s:%d", bm["name"], bm["port"]))
				}
				for _, h := range hosts {
					out[h+path] = strings.Join(backends, ",")
				}
			}
		case "HTTPProxy":
			fqdn, _, _ := unstructured.NestedString(o.Object, "spec", "virtualhost", "fqdn")
			routes, _, _ := unstructured.NestedSlice(o.Object, "spec", "routes")
			for _, r := range routes {
				rm := r.(map[string]any)
				// A design's prefix is rendered as the path itself (exact) and everything under
				// it (a prefix ending in /), both meaning the Ingress's element-wise Prefix.
				prefix := "/"
				for _, c := range rm["conditions"].([]any) {
					cm := c.(map[string]any)
					if p, ok := cm["prefix"].(string); ok && p != "/" {
						prefix = strings.TrimSuffix(p, "/")
					} else if p, ok := cm["exact"].(string); ok {
						prefix = p
					}
				}
				var backends []string
				for _, s := range rm["services"].([]any) {
					sm := s.(map[string]any)
					backends = append(backends, fmt.Sprintf("%s:%d", sm["name"], sm["port"]))
				}
				out[fqdn+prefix] = strings.Join(backends, ",")
			}
		}
	}
	return out
}

// TestImportIngressRoute reads Contour's deprecated IngressRoute like the HTTPProxy that
// replaced it: the host, TLS, prefixes and weighted services carry over, a delegation is named.
func TestImportIngressRoute(t *testing.T) {
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(`apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: shop, namespace: web}
spec:
  virtualhost: {fqdn: shop.example.com, tls: {secretName: shop-tls}}
  routes:
  - match: /
    services: [{name: frontend, port: 80}]
  - match: /api
    services: [{name: api, port: 8080, weight: 90}, {name: api-canary, port: 8080, weight: 10}]
  - match: /blog
    delegate: {name: blog, namespace: blog}`, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	imp, err := ImportIngress(objs)
	if err != nil {
		t.Fatal(err)
	}
	out, err := imp.CUE("web")
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	flat := strings.Join(strings.Fields(text), " ")
	for _, want := range []string{`"shop.example.com"`, `"shop-tls"`, `"/api"`, `weight: 90`, `weight: 10`, `"frontend"`} {
		if !strings.Contains(flat, want) {
			t.Errorf("import lacks %s:\n%s", want, text)
		}
	}
	if !strings.Contains(strings.Join(imp.Warnings, "\n"), "delegates to blog/blog") {
		t.Errorf("the delegation is not named: %v", imp.Warnings)
	}
}

// TestImportHTTPProxyPolicies: what an HTTPProxy route says besides its backends reaches the
// design (header matches, timeout, retries, header policies, redirect, prefix rewrite), the
// design loads and renders back to the same policies for Contour, and every part a design
// cannot say is named in a warning.
func TestImportHTTPProxyPolicies(t *testing.T) {
	src := `apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: shop, namespace: web}
spec:
  virtualhost: {fqdn: shop.example.com}
  routes:
  - conditions: [{prefix: /api}, {header: {name: x-canary, exact: "true"}}, {header: {name: ":method", exact: POST}}, {queryParameter: {name: v, exact: "2"}}]
    services: [{name: api, port: 8080}]
    timeoutPolicy: {response: 5s, idle: 1m}
    retryPolicy: {count: 3, perTryTimeout: 1s, retryOn: [5xx, reset, retriable-headers]}
    requestHeadersPolicy: {set: [{name: x-team, value: shop}], remove: [x-debug]}
    responseHeadersPolicy: {set: [{name: cache-control, value: no-store}]}
    pathRewritePolicy: {replacePrefix: [{replacement: /v2}]}
    loadBalancerPolicy: {strategy: Cookie}
  - conditions: [{prefix: /old}]
    requestRedirectPolicy: {scheme: https, hostname: www.example.com, path: /new, statusCode: 308}
  - conditions: [{prefix: /}, {header: {name: user-agent, contains: bot}}]
    services: [{name: frontend, port: 80}]`
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(src), &u.Object); err != nil {
		t.Fatal(err)
	}
	imp, err := ImportIngress([]*unstructured.Unstructured{u})
	if err != nil {
		t.Fatal(err)
	}
	warnings := strings.Join(imp.Warnings, "\n")
	for _, want := range []string{"route 0: loadBalancerPolicy is not imported", "route 0: timeoutPolicy.idle is not imported",
		"route 0: retryPolicy.retryOn retriable-headers is not imported", "route 2: condition map[header:map[contains:bot name:user-agent]] is not imported"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("no warning %q in:\n%s", want, warnings)
		}
	}
	design, err := imp.CUE("web")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for p, data := range map[string][]byte{
		"clusters/edge.cue":      []byte("cluster: contour: {mesh: \"istio\", ingress: \"contour\"}\n"),
		"designs/web/design.cue": append(design, []byte("design: web: targets: matchLabels: {}\n")...),
	} {
		must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), data, 0o644))
	}
	fleet, designs, err := schema.Load(context.Background(), os.DirFS(dir), schema.DefaultLoadOptions())
	if err != nil {
		t.Fatalf("the imported design does not load: %v\n%s", err, design)
	}
	b, err := Render(context.Background(), &designs[0], &fleet.Clusters[0], Options{Revision: "r"})
	if err != nil {
		t.Fatal(err)
	}
	var proxy *unstructured.Unstructured
	for _, o := range b.Objects {
		if o.GetKind() == "HTTPProxy" {
			proxy = o
		}
	}
	routes, _, _ := unstructured.NestedSlice(proxy.Object, "spec", "routes")
	var api, old map[string]any
	for _, r := range routes {
		rm := r.(map[string]any)
		switch fmt.Sprint(rm["conditions"].([]any)[0]) {
		case "map[prefix:/api]":
			api = rm
		case "map[exact:/old]":
			old = rm
		}
	}
	if api == nil || old == nil {
		t.Fatalf("routes rendered back: %v", routes)
	}
	for path, want := range map[string]string{
		"conditions":            "[map[prefix:/api] map[header:map[exact:true name:x-canary]] map[header:map[exact:POST name::method]] map[queryParameter:map[exact:2 name:v]]]",
		"timeoutPolicy":         "map[response:5s]",
		"retryPolicy":           "map[count:3 perTryTimeout:1s retryOn:[5xx reset]]",
		"requestHeadersPolicy":  "map[remove:[x-debug] set:[map[name:x-team value:shop]]]",
		"responseHeadersPolicy": "map[set:[map[name:cache-control value:no-store]]]",
		"pathRewritePolicy":     "map[replacePrefix:[map[replacement:/v2]]]",
	} {
		if got := fmt.Sprint(api[path]); got != want {
			t.Errorf("/api %s rendered back as %s, want %s", path, got, want)
		}
	}
	if got := fmt.Sprint(old["requestRedirectPolicy"]); got != "map[hostname:www.example.com path:/new scheme:https statusCode:308]" {
		t.Errorf("/old redirect rendered back as %s", got)
	}
}
