package render

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/internal/testenv"
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
	// The class that picked a controller (the cluster's ingress provider picks it for a
	// design); the Exact path is an exact route.
	if w := strings.Join(imp.Warnings, "\n"); len(imp.Warnings) != 1 || !strings.Contains(w, "spec.ingressClassName is not imported") {
		t.Errorf("warnings = %q, want one about the class", imp.Warnings)
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
					key := fmt.Sprint(rm["host"], pm["path"])
					if pm["pathType"] == "Exact" {
						key += " (exact)"
					}
					out[key] = fmt.Sprintf("%s:%d", svc, port)
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
				if kind, _, _ := unstructured.NestedString(matches[0].(map[string]any), "path", "type"); kind == "Exact" {
					path += " (exact)"
				}
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
			// A design's prefix is rendered as the path itself (exact) and everything under it
			// (a prefix ending in /), both meaning the Ingress's element-wise Prefix; an exact
			// condition alone is an exact path.
			backendsOf, underToo := map[string]string{}, map[string]bool{}
			for _, r := range routes {
				rm := r.(map[string]any)
				prefix := "/"
				for _, c := range rm["conditions"].([]any) {
					cm := c.(map[string]any)
					if p, ok := cm["prefix"].(string); ok {
						prefix = strings.TrimSuffix(p, "/")
						underToo[prefix] = true
						if prefix == "" {
							prefix = "/"
						}
					} else if p, ok := cm["exact"].(string); ok {
						prefix = p
					}
				}
				var backends []string
				for _, s := range rm["services"].([]any) {
					sm := s.(map[string]any)
					backends = append(backends, fmt.Sprintf("%s:%d", sm["name"], sm["port"]))
				}
				backendsOf[prefix] = strings.Join(backends, ",")
			}
			for p, b := range backendsOf {
				if underToo[p] || (p == "/" && underToo[""]) {
					out[fqdn+p] = b
				} else {
					out[fqdn+p+" (exact)"] = b
				}
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
  virtualhost:
    fqdn: shop.example.com
    tls: {secretName: shop-tls, minimumProtocolVersion: "1.3"}
    corsPolicy: {allowOrigin: ["https://app.example.com"], allowMethods: [GET, POST], maxAge: 10m, allowCredentials: true}
    rateLimitPolicy: {local: {requests: 100, unit: second, burst: 20}, global: {descriptors: []}}
    jwtProviders: [{name: auth, issuer: "https://auth.example.com", default: true, audiences: [shop], remoteJWKS: {uri: "https://auth.example.com/jwks.json"}}]
    ipDenyPolicy: [{cidr: 203.0.113.0/24, source: Remote}]
  routes:
  - conditions: [{prefix: /api}, {header: {name: x-canary, exact: "true"}}, {header: {name: ":method", exact: POST}}, {queryParameter: {name: v, exact: "2"}}]
    services: [{name: api, port: 8080, protocol: h2c}]
    rateLimitPolicy: {local: {requests: 10, unit: minute}}
    ipAllowPolicy: [{cidr: 192.0.2.0/24, source: Remote}]
    enableWebsockets: true
    timeoutPolicy: {response: 5s, idle: 1m, idleConnection: 5m}
    healthCheckPolicy: {path: /healthz, intervalSeconds: 10, timeoutSeconds: 2, unhealthyThresholdCount: 3, healthyThresholdCount: 2}
    retryPolicy: {count: 3, perTryTimeout: 1s, retryOn: [5xx, reset, retriable-headers]}
    requestHeadersPolicy: {set: [{name: x-team, value: shop}], remove: [x-debug]}
    responseHeadersPolicy: {set: [{name: cache-control, value: no-store}]}
    pathRewritePolicy: {replacePrefix: [{replacement: /v2}]}
    loadBalancerPolicy: {strategy: Cookie}
  - conditions: [{prefix: /old}]
    requestRedirectPolicy: {scheme: https, hostname: www.example.com, path: /new, statusCode: 308}
  - conditions: [{prefix: /internal}]
    directResponsePolicy: {statusCode: 403, body: closed}
  - conditions: [{prefix: /}, {header: {name: user-agent, contains: bot}}]
    services: [{name: frontend, port: 80}]
    jwtVerificationPolicy: {disabled: true}`
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(src), &u.Object); err != nil {
		t.Fatal(err)
	}
	imp, err := ImportIngress([]*unstructured.Unstructured{u})
	if err != nil {
		t.Fatal(err)
	}
	warnings := strings.Join(imp.Warnings, "\n")
	for _, want := range []string{"spec.routes[0].loadBalancerPolicy is not imported", "spec.routes[0].timeoutPolicy.idleConnection is not imported",
		"spec.routes[0].retryPolicy.retryOn retriable-headers is not imported", "spec.routes[3].conditions[1] map[header:map[contains:bot name:user-agent]] is not imported",
		"spec.virtualhost.rateLimitPolicy.global is not imported", "spec.routes[0].services[0].protocol is not imported"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("no warning %q in:\n%s", want, warnings)
		}
	}
	design, err := imp.CUE("web")
	if err != nil {
		t.Fatal(err)
	}
	b, err := renderImported(t, "web", design)
	if err != nil {
		t.Fatalf("the imported design does not load and render: %v\n%s", err, design)
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
		"timeoutPolicy":         "map[idle:1m response:5s]",
		"healthCheckPolicy":     "map[healthyThresholdCount:2 intervalSeconds:10 path:/healthz timeoutSeconds:2 unhealthyThresholdCount:3]",
		"retryPolicy":           "map[count:3 perTryTimeout:1s retryOn:[5xx reset]]",
		"requestHeadersPolicy":  "map[remove:[x-debug] set:[map[name:x-team value:shop]]]",
		"responseHeadersPolicy": "map[set:[map[name:cache-control value:no-store]]]",
		"pathRewritePolicy":     "map[replacePrefix:[map[replacement:/v2]]]",
		"rateLimitPolicy":       "map[local:map[requests:10 unit:minute]]",
		"ipAllowPolicy":         "[map[cidr:192.0.2.0/24 source:Remote]]",
		"enableWebsockets":      "true",
	} {
		if got := fmt.Sprint(api[path]); got != want {
			t.Errorf("/api %s rendered back as %s, want %s", path, got, want)
		}
	}
	if got := fmt.Sprint(old["requestRedirectPolicy"]); got != "map[hostname:www.example.com path:/new scheme:https statusCode:308]" {
		t.Errorf("/old redirect rendered back as %s", got)
	}
	closed := false
	for _, r := range routes {
		rm := r.(map[string]any)
		closed = closed || fmt.Sprint(rm["directResponsePolicy"]) == "map[body:closed statusCode:403]"
	}
	if !closed {
		t.Errorf("/internal no longer answers 403 itself: %v", routes)
	}
	vh, _, _ := unstructured.NestedMap(proxy.Object, "spec", "virtualhost")
	for path, want := range map[string]string{
		"tls":             "map[minimumProtocolVersion:1.3 secretName:shop-tls]",
		"corsPolicy":      "map[allowCredentials:true allowMethods:[GET POST] allowOrigin:[https://app.example.com] maxAge:10m]",
		"rateLimitPolicy": "map[local:map[burst:20 requests:100 unit:second]]",
		"jwtProviders":    "[map[audiences:[shop] default:true issuer:https://auth.example.com name:jwt remoteJWKS:map[uri:https://auth.example.com/jwks.json]]]",
		"ipDenyPolicy":    "[map[cidr:203.0.113.0/24 source:Remote]]",
	} {
		if got := fmt.Sprint(vh[path]); got != want {
			t.Errorf("virtualhost %s rendered back as %s, want %s", path, got, want)
		}
	}
	for _, r := range routes {
		rm := r.(map[string]any)
		if fmt.Sprint(rm["conditions"].([]any)[0]) == "map[prefix:/]" && fmt.Sprint(rm["jwtVerificationPolicy"]) != "map[disabled:true]" {
			t.Errorf("/ no longer leaves the token check out: %v", rm)
		}
	}
}

// carriedFields are the HTTPProxy fields a design says in its own words (the import carries
// them; TestImportHTTPProxyPolicies renders them back to the same fields). Every other field
// must be named, by its path, in a warning.
var carriedFields = regexp.MustCompile(`^spec\.(` + strings.Join([]string{
	`virtualhost\.fqdn`,
	`virtualhost\.tls\.passthrough`,
	`tcpproxy\.services\[\d+\]\.(name|port|weight)`,
	`virtualhost\.tls\.(secretName|minimumProtocolVersion)`,
	`virtualhost\.corsPolicy\.(allowOrigin|allowMethods|allowHeaders|exposeHeaders)\[\d+\]`,
	`virtualhost\.corsPolicy\.(maxAge|allowCredentials)`,
	`(virtualhost|routes\[\d+\])\.rateLimitPolicy\.local\.(requests|unit|burst)`,
	`(virtualhost|routes\[\d+\])\.ip(Allow|Deny)Policy\[\d+\]\.(cidr|source)`,
	`virtualhost\.jwtProviders\[0\]\.(name|issuer|default|forwardJWT|remoteJWKS\.uri|audiences\[\d+\])`,
	`routes\[\d+\]\.conditions\[\d+\]\.(prefix|exact|regex|header\.(name|exact|regex|present|notpresent)|queryParameter\.(name|exact|prefix|regex|present))`,
	`routes\[\d+\]\.services\[\d+\]\.(name|port|weight)`,
	`routes\[\d+\]\.timeoutPolicy\.(response|idle)`,
	`routes\[\d+\]\.healthCheckPolicy\.(path|intervalSeconds|timeoutSeconds|unhealthyThresholdCount|healthyThresholdCount|host)`,
	`routes\[\d+\]\.retryPolicy\.(count|perTryTimeout|retryOn\[\d+\])`,
	`routes\[\d+\]\.(request|response)HeadersPolicy\.(set\[\d+\]\.(name|value)|remove\[\d+\])`,
	`routes\[\d+\]\.requestRedirectPolicy\.(scheme|hostname|path|statusCode)`,
	`routes\[\d+\]\.pathRewritePolicy\.replacePrefix\[0\]\.(prefix|replacement)`,
	`routes\[\d+\]\.(enableWebsockets|jwtVerificationPolicy\.disabled)`,
	`routes\[\d+\]\.directResponsePolicy\.(statusCode|body)`,
}, "|") + `)$`)

// TestImportKeepsOrNamesEveryFieldOfContoursSamples imports every HTTPProxy in the pinned
// Contour module's examples and its documentation's samples, one at a time: each field is
// either carried into the design (its value is in the imported CUE) or named, by its path, in
// a warning. None is lost without a word.
func TestImportKeepsOrNamesEveryFieldOfContoursSamples(t *testing.T) {
	dir, err := testenv.ContourModule(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var docs []sample
	for _, root := range []string{"examples", "site/content/docs/main"} {
		err := filepath.WalkDir(filepath.Join(dir, root), func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			switch filepath.Ext(path) {
			case ".yaml", ".yml":
				docs = append(docs, splitYAML(rel, string(data))...)
			case ".md":
				for i, block := range yamlBlocks(string(data)) {
					docs = append(docs, splitYAML(fmt.Sprintf("%s (block %d)", rel, i), block)...)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	proxies, fields, carried, named := 0, 0, 0, 0
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc.text), &u.Object); err != nil || u.GetKind() != "HTTPProxy" {
			continue // not an HTTPProxy, or a documentation fragment that is not YAML
		}
		proxies++
		if u.GetNamespace() == "" {
			u.SetNamespace("default")
		}
		imp, err := ImportIngress([]*unstructured.Unstructured{u})
		if err != nil {
			if _, root, _ := unstructured.NestedString(u.Object, "spec", "virtualhost", "fqdn"); !root {
				continue // an included proxy: the import names it and asks for the root
			}
			t.Errorf("%s: %s: %v", doc.where, ObjectID(u), err)
			continue
		}
		design, err := imp.CUE("imported")
		if err != nil {
			t.Fatalf("%s: %v", doc.where, err)
		}
		text := strings.ToLower(string(design))
		if _, err := renderImported(t, "imported", design); err != nil {
			t.Errorf("%s: %s: the imported design does not render for contour: %v\n%s", doc.where, ObjectID(u), err, design)
		}
		spec, _, _ := unstructured.NestedMap(u.Object, "spec")
		for _, leaf := range leaves("spec", spec) {
			fields++
			switch {
			case warned(imp.Warnings, leaf.path):
				named++
			case carriedFields.MatchString(leaf.path):
				if v := strings.ToLower(fmt.Sprint(leaf.value)); !strings.Contains(text, v) && !carriedAsWord[v] && !strings.HasSuffix(leaf.path, ".jwtProviders[0].name") && !strings.HasSuffix(leaf.path, ".weight") {
					t.Errorf("%s: %s: %s = %v is carried, but the imported design lacks it:\n%s", doc.where, ObjectID(u), leaf.path, leaf.value, design)
				}
				carried++
			default:
				t.Errorf("%s: %s: %s = %v is neither imported nor named in a warning (%q)", doc.where, ObjectID(u), leaf.path, leaf.value, imp.Warnings)
			}
		}
	}
	if proxies < 40 {
		t.Errorf("only %d HTTPProxy samples found in %s; the examples and documentation hold many more", proxies, dir)
	}
	t.Logf("%d HTTPProxy samples, %d fields: %d carried, %d named in warnings", proxies, fields, carried, named)
}

// carriedAsWord are values the design says in its own words: Contour's ":method" header is
// the design's method, its address sources are peer and forwarded, and a default provider is
// the design's only one (whose name, jwt, the render gives it). Weights are carried as
// percentages, scaled from Contour's relative weights.
var carriedAsWord = map[string]bool{":method": true, "peer": true, "remote": true, "true": true}

type sample struct{ where, text string }

// splitYAML splits a multi-document YAML file.
func splitYAML(where, data string) []sample {
	var out []sample
	for _, doc := range regexp.MustCompile(`(?m)^---.*$`).Split(data, -1) {
		out = append(out, sample{where, doc})
	}
	return out
}

// yamlBlocks are the fenced yaml code blocks of a Markdown page.
func yamlBlocks(md string) []string {
	var out []string
	for _, m := range regexp.MustCompile("(?ms)^```ya?ml\\s*\\n(.*?)^```").FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	return out
}

type leaf struct {
	path  string
	value any
}

// leaves flattens a decoded object to its scalar fields, with paths like
// spec.routes[0].conditions[1].prefix.
func leaves(path string, v any) []leaf {
	switch v := v.(type) {
	case map[string]any:
		var out []leaf
		for _, k := range slices.Sorted(maps.Keys(v)) {
			out = append(out, leaves(path+"."+k, v[k])...)
		}
		return out
	case []any:
		var out []leaf
		for i, e := range v {
			out = append(out, leaves(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
		return out
	}
	return []leaf{{path, v}}
}

// warned reports whether a warning names the path or one of its ancestors.
func warned(warnings []string, path string) bool {
	for p := path; p != "spec"; {
		for _, w := range warnings {
			if i := strings.Index(w, p); i >= 0 {
				if rest := w[i+len(p):]; rest == "" || rest[0] == ' ' || rest[0] == ':' {
					return true
				}
			}
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}

// renderImported loads an imported design beside a contour cluster, as a user would after
// setting its targets, and renders it.
func renderImported(t *testing.T, name string, design []byte) (*Bundle, error) {
	dir := t.TempDir()
	for p, data := range map[string][]byte{
		"clusters/edge.cue":               []byte("cluster: edge: {mesh: \"istio\", ingress: \"contour\"}\n"),
		"designs/" + name + "/design.cue": append(design, []byte("design: "+name+": targets: matchLabels: {}\n")...),
	} {
		must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), data, 0o644))
	}
	fleet, designs, err := schema.Load(context.Background(), os.DirFS(dir), schema.DefaultLoadOptions())
	if err != nil {
		return nil, err
	}
	return Render(context.Background(), &designs[0], &fleet.Clusters[0], Options{Revision: "r"})
}

// TestImportNamesIngressAnnotationsAndFields: an Ingress's controller annotations and the
// spec fields a design does not read are named in warnings, never dropped without a word.
func TestImportNamesIngressAnnotationsAndFields(t *testing.T) {
	u := &unstructured.Unstructured{}
	must(t, yaml.Unmarshal([]byte(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
    kubectl.kubernetes.io/last-applied-configuration: "{}"
spec:
  ingressClassName: nginx
  defaultBackend: {service: {name: frontend, port: {number: 80}}}
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: frontend, port: {number: 80}}}}`), &u.Object))
	imp, err := ImportIngress([]*unstructured.Unstructured{u})
	if err != nil {
		t.Fatal(err)
	}
	warnings := strings.Join(imp.Warnings, "\n")
	for _, want := range []string{"metadata.annotations[nginx.ingress.kubernetes.io/rewrite-target] is not imported", "spec.ingressClassName is not imported", "spec.defaultBackend is not imported"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("no warning %q in:\n%s", want, warnings)
		}
	}
	if strings.Contains(warnings, "last-applied-configuration") {
		t.Errorf("kubectl's own annotation is named as configuration:\n%s", warnings)
	}
}
