package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestContourServesTheEdgeExample applies examples/edge, as rendered for its Contour cluster,
// to a real apiserver with the real Contour controller watching it: every HTTPProxy is valid
// (meshcd's health says Current only once Contour has said so), and the Envoy routes and
// clusters Contour computes, read over xDS, hold what the design says.
func TestContourServesTheEdgeExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	tenv, err := testenv.Start(ctx, testenv.Options{Names: []string{"edge-contour"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tenv.Stop()
	tc := tenv.Clusters[0]
	// The certificates are the operator's, never the repo's.
	must(t, tc.CreateTLSSecret(ctx, "edge", "www-tls", "www.example.com"))
	must(t, tc.CreateTLSSecret(ctx, "edge", "wildcard-tls", "*.example.com"))
	contour, err := tc.StartContour(ctx, testenv.ContourOptions{ExternalNameServices: true})
	if err != nil {
		t.Fatal(err)
	}
	defer contour.Close()

	fsys := os.DirFS("../examples/edge")
	fl, designs, err := schema.Load(ctx, fsys, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	addPathMatches(designs, false)
	var edge schema.Cluster
	for _, fc := range fl.Clusters {
		if fc.Name == "edge-contour" {
			edge = fc
		}
	}
	c, err := fleet.Connect(edge, tc.Config(), fleet.DefaultClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Live.Stop()
	// The three designs include one another (the platform's root includes the teams'
	// proxies), so all are applied before any is judged: the daemon and `meshcd apply` sync them
	// side by side too.
	r := New()
	var bundles []*render.Bundle
	for i := range designs {
		d := &designs[i]
		b, err := render.Render(ctx, d, &edge, render.Options{Revision: "r1", Repo: render.NewRepo(fsys)})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := r.Sync(ctx, c, b, options(d)); err != nil || res.Error != "" {
			t.Fatalf("%s: %v %s", d.Name, err, res.Error)
		}
		bundles = append(bundles, b)
	}
	for _, b := range bundles {
		var h Health
		within(t, 30*time.Second, func() bool {
			h = Compute(c, b)
			return h.Status == "Current"
		}, func() string { return fmt.Sprintf("design %s: %+v\n%s", b.Design, h, contour.Log()) })
	}
	routes, err := contour.Routes(ctx)
	must(t, err)
	clusters, err := contour.Clusters(ctx)
	must(t, err)

	// What Envoy is told, route by route, against the design.
	shop := envoyRoute(t, routes, "https/www.example.com", "www.example.com", "/shop/")
	wantJSON(t, "shop's weights", shop, "route.weighted_clusters.clusters",
		`[{"name":"shop/checkout-canary/8080/da39a3ee5e","weight":20},{"name":"shop/checkout-stable/8080/da39a3ee5e","weight":80}]`)
	wantJSON(t, "shop's rewrite", shop, "route.prefix_rewrite", `"/"`)
	wantJSON(t, "shop's timeout", shop, "route.timeout", `"5s"`)
	wantJSON(t, "shop's retries", shop, "route.retry_policy", `{"num_retries":2,"per_try_timeout":"2s","retry_on":"5xx,reset"}`)
	wantJSON(t, "shop's header", shop, "request_headers_to_add", `[{"append_action":"OVERWRITE_IF_EXISTS_OR_ADD","header":{"key":"X-Team","value":"shop"}}]`)
	legacy := envoyRoute(t, routes, "https/www.example.com", "www.example.com", "/legacy/")
	wantJSON(t, "legacy's upstream", legacy, "route.cluster", `"edge/ext-legacy-api-example-net/443/a3780dcbb8"`)
	wantJSON(t, "legacy's Host", legacy, "route.host_rewrite_literal", `"legacy-api.example.net"`)
	wantJSON(t, "legacy's timeout", legacy, "route.timeout", `"10s"`)
	var upstream map[string]any
	for _, cl := range clusters {
		if cl["name"] == "edge/ext-legacy-api-example-net/443/a3780dcbb8" {
			upstream = cl
		}
	}
	wantJSON(t, "legacy's upstream TLS", upstream, "transport_socket.name", `"envoy.transport_sockets.tls"`)
	wantJSON(t, "legacy's SNI", upstream, "transport_socket.typed_config.sni", `"legacy-api.example.net"`)
	front := envoyRoute(t, routes, "https/www.example.com", "www.example.com", "/")
	wantJSON(t, "front page", front, "route.cluster", `"edge/frontend/8080/da39a3ee5e"`)
	wantJSON(t, "front page's HSTS", front, "response_headers_to_add", `[{"append_action":"OVERWRITE_IF_EXISTS_OR_ADD","header":{"key":"Strict-Transport-Security","value":"max-age=31536000"}}]`)
	// The search team's own host, on the platform's delegated wildcard certificate.
	wantJSON(t, "search-as-you-type", envoyRoute(t, routes, "https/search.example.com", "search.example.com", "/live/"), "route.upgrade_configs", `[{"upgrade_type":"websocket"}]`)
	// One meaning per prefix: a path and everything under it, never a longer word, as Envoy
	// would match each request against the routes in Contour's order.
	for _, c := range []struct{ host, path, want string }{
		{"www.example.com", "/shop", "shop/checkout-canary,shop/checkout-stable /"},
		{"www.example.com", "/shop/cart", "shop/checkout-canary,shop/checkout-stable /cart"},
		{"www.example.com", "/shopping", "edge/frontend /shopping"},
		{"www.example.com", "/search", "search/query /search"},
		{"www.example.com", "/search/q", "search/query /search/q"},
		{"www.example.com", "/searching", "edge/frontend /searching"},
		{"www.example.com", "/legacy", "edge/ext-legacy-api-example-net /legacy"},
		{"www.example.com", "/legacy/v1", "edge/ext-legacy-api-example-net /legacy/v1"},
		{"www.example.com", "/legacyx", "edge/frontend /legacyx"},
		{"www.example.com", "/", "edge/frontend /"},
		{"search.example.com", "/live", "search/query /live"},
		{"search.example.com", "/lively", "search/query /lively"},
		// exact paths, then regexes, then prefixes, a claim's joined to its prefix
		{"www.example.com", "/legacy/v2/reports", "edge/frontend /legacy/v2/reports"},
		{"www.example.com", "/legacy/v2/reports/q3", "edge/frontend /legacy/v2/reports/q3"},
		{"www.example.com", "/legacy/v2/reportsx", "edge/ext-legacy-api-example-net /legacy/v2/reportsx"},
		{"www.example.com", "/legacy/ping", "edge/frontend /legacy/ping"},
		{"www.example.com", "/legacy/ping/x", "edge/ext-legacy-api-example-net /legacy/ping/x"},
		{"www.example.com", "/legacy/42", "edge/frontend /legacy/42"},
		{"www.example.com", "/legacy/42/x", "edge/ext-legacy-api-example-net /legacy/42/x"},
		{"www.example.com", "/shop/", "shop/checkout-canary /shop/"},
		{"www.example.com", "/shop/p/42", "shop/checkout-stable /shop/p/42"},
		{"www.example.com", "/shop/p/x", "shop/checkout-canary,shop/checkout-stable /p/x"},
		{"www.example.com", "/shop/p/42/x", "shop/checkout-canary,shop/checkout-stable /p/42/x"},
	} {
		if got := envoyReaches(t, routes, "https/"+c.host, c.host, c.path); got != c.want {
			t.Errorf("%s%s reaches %q, want %q", c.host, c.path, got, c.want)
		}
	}
	wantJSON(t, "the favicon's caching", envoyRouteBy(t, routes, "https/www.example.com", "www.example.com", "path", "/favicon.ico"), "response_headers_to_add",
		`[{"append_action":"OVERWRITE_IF_EXISTS_OR_ADD","header":{"key":"Cache-Control","value":"max-age=86400"}}]`)
	// Plain HTTP on a TLS host only redirects.
	wantJSON(t, "plain HTTP", envoyRoute(t, routes, "ingress_http", "www.example.com", "/shop/"), "redirect", `{"https_redirect":true}`)

	// The platform team requires a JWT on its host and leaves the front page open: Contour
	// accepts it, and Envoy checks tokens on every route but that one, the teams' included.
	for i := range designs {
		d := &designs[i]
		if d.Name != "platform" {
			continue
		}
		vh := d.Ingress.Hosts["www.example.com"]
		open := false
		vh.JWT = &schema.JWT{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/.well-known/jwks.json", Audiences: []string{"www"}}
		vh.Routes[1].JWT = &open
		// and an address range denied on the host, the legacy API for the office only
		vh.Access = &schema.IPAccess{Deny: []string{"203.0.113.0/24"}, Source: "forwarded"}
		vh.Routes[0].Access = &schema.IPAccess{Allow: []string{"192.0.2.0/24"}, Source: "forwarded"}
		// and an authorization server checking everything but the front page
		vh.ExtAuth = &schema.ExtAuth{Service: "frontend", Port: 8080}
		unchecked := false
		vh.Routes[1].ExtAuth = &unchecked
		d.Ingress.Hosts["www.example.com"] = vh
		b, err := render.Render(ctx, d, &edge, render.Options{Revision: "r2", Repo: render.NewRepo(fsys)})
		must(t, err)
		if res, err := r.Sync(ctx, c, b, options(d)); err != nil || res.Error != "" {
			t.Fatalf("%s: %v %s", d.Name, err, res.Error)
		}
		var h Health
		within(t, 30*time.Second, func() bool {
			h = Compute(c, b)
			return h.Status == "Current"
		}, func() string { return fmt.Sprintf("platform with a JWT: %+v", h) })
	}
	routes, err = contour.Routes(ctx)
	must(t, err)
	for _, path := range []string{"/shop/cart", "/search/q", "/legacy/v1", "/", "/shopping"} {
		route := envoyMatch(t, routes, "https/www.example.com", "www.example.com", path)
		filters, _ := route["typed_per_filter_config"].(map[string]any)
		requirement, _ := filters["envoy.filters.http.jwt_authn"].(map[string]any)
		toFrontend := strings.HasPrefix(envoyReaches(t, routes, "https/www.example.com", "www.example.com", path), "edge/frontend ")
		switch {
		case toFrontend && requirement != nil:
			t.Errorf("%s reaches the open front page but Envoy asks for a token: %v", path, requirement)
		case !toFrontend && (requirement == nil || requirement["requirement_name"] != "jwt"):
			t.Errorf("%s is served without a token check: %v", path, route)
		}
	}
	// Envoy's RBAC filter: the host denies the range (remote_ip: the forwarded address), the
	// legacy route replaces that with its allow list, and the other routes keep the host's.
	rbac := func(v map[string]any) string {
		filters, _ := v["typed_per_filter_config"].(map[string]any)
		data, _ := json.Marshal(filters["envoy.filters.http.rbac"])
		return string(data)
	}
	hostChecked := false
	for _, rc := range routes {
		if rc["name"] != "https/www.example.com" {
			continue
		}
		for _, v := range rc["virtual_hosts"].([]any) {
			if vh := v.(map[string]any); vh["name"] == "www.example.com" {
				hostChecked = true
				if got := rbac(vh); !strings.Contains(got, `"action":"DENY"`) || !strings.Contains(got, `"remote_ip":{"address_prefix":"203.0.113.0","prefix_len":24}`) {
					t.Errorf("the virtual host does not deny 203.0.113.0/24 by the forwarded address: %s", got)
				}
			}
		}
	}
	// The authorization server: the front page is left unchecked, a team's route is not.
	authz := func(path string) string {
		filters, _ := envoyMatch(t, routes, "https/www.example.com", "www.example.com", path)["typed_per_filter_config"].(map[string]any)
		data, _ := json.Marshal(filters["envoy.filters.http.ext_authz"])
		return string(data)
	}
	if got := authz("/"); !strings.Contains(got, `"disabled":true`) {
		t.Errorf("the front page is checked by the authorization server: %s", got)
	}
	if got := authz("/shop/cart"); strings.Contains(got, `"disabled":true`) {
		t.Errorf("/shop/cart is left unchecked: %s", got)
	}
	if !hostChecked {
		t.Error("Envoy has no virtual host www.example.com in https/www.example.com")
	}
	if got := rbac(envoyMatch(t, routes, "https/www.example.com", "www.example.com", "/legacy/v1")); strings.Contains(got, "203.0.113.0") || !strings.Contains(got, `"remote_ip":{"address_prefix":"192.0.2.0","prefix_len":24}`) {
		t.Errorf("/legacy does not allow only 192.0.2.0/24: %s", got)
	}
	if got := rbac(envoyMatch(t, routes, "https/www.example.com", "www.example.com", "/shop/cart")); got != "null" {
		t.Errorf("/shop/cart has a route-level address rule of its own, which would replace the host's: %s", got)
	}
	clusters, err = contour.Clusters(ctx)
	must(t, err)
	jwks, authzCluster := false, false
	for _, cl := range clusters {
		jwks = jwks || strings.HasPrefix(cl["name"].(string), "dnsname/https/auth.example.com/443/")
		authzCluster = authzCluster || cl["name"] == "extension/edge/frontend-extauth"
	}
	if !authzCluster {
		t.Error("Envoy has no cluster for the authorization server's ExtensionService")
	}
	if !jwks {
		t.Error("Envoy has no cluster for the issuer's JWKS")
	}
}

// envoyRoute finds the route with this prefix in a virtual host of a route configuration.
func envoyRoute(t *testing.T, configs []map[string]any, config, vhost, prefix string) map[string]any {
	t.Helper()
	return envoyRouteBy(t, configs, config, vhost, "prefix", prefix)
}

// envoyRouteBy finds the route whose match has this field and value.
func envoyRouteBy(t *testing.T, configs []map[string]any, config, vhost, field, prefix string) map[string]any {
	t.Helper()
	for _, route := range envoyRoutes(configs, config, vhost) {
		if m, _ := route["match"].(map[string]any); m[field] == prefix {
			return route
		}
	}
	t.Fatalf("Envoy has no route %s %s on %s in %s", field, prefix, vhost, config)
	return nil
}

// envoyRoutes are the routes of a virtual host in a route configuration, in Envoy's order.
func envoyRoutes(configs []map[string]any, config, vhost string) []map[string]any {
	var out []map[string]any
	for _, rc := range configs {
		if rc["name"] != config {
			continue
		}
		vhs, _ := rc["virtual_hosts"].([]any)
		for _, v := range vhs {
			vh, _ := v.(map[string]any)
			if vh["name"] != vhost {
				continue
			}
			rs, _ := vh["routes"].([]any)
			for _, r := range rs {
				route, _ := r.(map[string]any)
				out = append(out, route)
			}
		}
	}
	return out
}

// addPathMatches gives the edge example's platform host an exact path and a regex under its
// legacy prefix, and the shop team's claim an exact path and a regex under its own; with
// wholePath, the exact path is rewritten whole (which Contour's HTTPProxy cannot do).
func addPathMatches(designs []schema.Design, wholePath bool) {
	frontend := []schema.IngressBackend{{Service: "frontend", Weight: 100}}
	for i := range designs {
		d := &designs[i]
		switch d.Name {
		case "platform":
			vh := d.Ingress.Hosts["www.example.com"]
			ping := schema.IngressRoute{Prefix: "/", Exact: "/legacy/ping", Backends: frontend}
			if wholePath {
				ping.Rewrite = &schema.Rewrite{Path: "/ping"}
			}
			vh.Routes = append(vh.Routes, ping, schema.IngressRoute{Prefix: "/", Regex: "/legacy/[0-9]+", Backends: frontend})
			d.Ingress.Hosts["www.example.com"] = vh
		case "shop":
			c := &d.Ingress.Claims[0]
			c.Routes = append(c.Routes,
				schema.IngressRoute{Prefix: "/", Exact: "/", Backends: []schema.IngressBackend{{Service: "checkout", Version: "canary", Weight: 100}}},
				schema.IngressRoute{Prefix: "/", Regex: "/p/[0-9]+", Backends: []schema.IngressBackend{{Service: "checkout", Version: "stable", Weight: 100}}})
		}
	}
}

// envoyReaches matches a request path against a virtual host's routes as Envoy does (the first
// route that matches, prefixes as strings, regexes whole) and says which Services it reaches
// and with what path.
func envoyReaches(t *testing.T, configs []map[string]any, config, vhost, path string) string {
	t.Helper()
	route := envoyMatch(t, configs, config, vhost, path)
	if route == nil {
		return "no route"
	}
	action, _ := route["route"].(map[string]any)
	if action == nil {
		return "no upstream"
	}
	m, _ := route["match"].(map[string]any)
	upstream := path
	if rw, ok := action["prefix_rewrite"].(string); ok {
		if prefix, isPrefix := m["prefix"].(string); isPrefix {
			upstream = rw + strings.TrimPrefix(path, prefix)
		}
		if _, isExact := m["path"].(string); isExact {
			upstream = rw
		}
	}
	if rr, ok := action["regex_rewrite"].(map[string]any); ok {
		pattern := rr["pattern"].(map[string]any)["regex"].(string)
		upstream = regexp.MustCompile(pattern).ReplaceAllString(path, rr["substitution"].(string))
	}
	var names []string
	if c, ok := action["cluster"].(string); ok {
		names = append(names, c)
	}
	if wc, ok := action["weighted_clusters"].(map[string]any); ok {
		for _, c := range wc["clusters"].([]any) {
			names = append(names, c.(map[string]any)["name"].(string))
		}
	}
	for i, n := range names {
		parts := strings.Split(n, "/") // namespace/service/port/hash
		names[i] = parts[0] + "/" + parts[1]
	}
	return strings.Join(names, ",") + " " + upstream
}

// envoyMatch returns the first route of a virtual host that matches the path as Envoy matches
// (prefixes as strings, path-separated prefixes by segment, regexes whole), or nil.
func envoyMatch(t *testing.T, configs []map[string]any, config, vhost, path string) map[string]any {
	t.Helper()
	for _, route := range envoyRoutes(configs, config, vhost) {
		m, _ := route["match"].(map[string]any)
		prefix, isPrefix := m["prefix"].(string)
		exact, isExact := m["path"].(string)
		segment, isSegment := m["path_separated_prefix"].(string)
		re, _ := m["safe_regex"].(map[string]any)
		switch {
		case isPrefix && strings.HasPrefix(path, prefix):
		case isExact && path == exact:
		case isSegment && (path == segment || strings.HasPrefix(path, segment+"/")):
		case re != nil && regexp.MustCompile("^(?:"+re["regex"].(string)+")$").MatchString(path):
		default:
			continue
		}
		return route
	}
	return nil
}

// wantJSON compares the field at a dotted path with the JSON the design means.
func wantJSON(t *testing.T, what string, obj map[string]any, path, want string) {
	t.Helper()
	var v any = obj
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	got, _ := json.Marshal(v)
	var w any
	must(t, json.Unmarshal([]byte(want), &w))
	wantNorm, _ := json.Marshal(w)
	if string(got) != string(wantNorm) {
		t.Errorf("%s: Envoy has %s at %s, want %s", what, got, path, wantNorm)
	}
}

// within polls cond every 100 ms until it holds, failing with what() after d.
func within(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestContourGatewayAPIServesTheEdgeExample: the same example rendered for its gateway-api
// cluster, with the real Contour as the Gateway API controller of each owner's Gateway.
//   - Declared as that Contour is (Gateway API v1.3, experimental channel, no system roots for
//     upstream TLS), the legacy route is refused at its line: Contour would send it plain HTTP.
//   - Declared wrongly (system roots), meshcd applies the BackendTLSPolicy and its health says
//     Contour refused it, rather than Current.
//   - Every Gateway is Programmed and every ingress route Accepted with its references
//     resolved, and Envoy routes each path as the design says, one meaning per prefix.
func TestContourGatewayAPIServesTheEdgeExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	tenv, err := testenv.Start(ctx, testenv.Options{Names: []string{"edge-gateway"}, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tenv.Stop()
	tc := tenv.Clusters[0]
	must(t, testenv.InstallCRDsWithGatewayAPI(ctx, tc.Config(), "v1.3.0", "experimental"))
	must(t, tc.CreateTLSSecret(ctx, "edge", "www-tls", "www.example.com"))
	must(t, tc.CreateTLSSecret(ctx, "edge", "wildcard-tls", "*.example.com"))

	fsys := os.DirFS("../examples/edge")
	fl, designs, err := schema.Load(ctx, fsys, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	addPathMatches(designs, true)
	var edge schema.Cluster
	for _, fc := range fl.Clusters {
		if fc.Name == "edge-gateway" {
			edge = fc
		}
	}
	no := false
	// What Contour 1.33 implements of Gateway API v1.3 (it writes no supportedFeatures of its
	// own): no retries (it would take a per-try timeout as the whole request's), no CORS.
	contourFeatures := []string{"HTTPRoute", "ReferenceGrant", "HTTPRouteQueryParamMatching", "HTTPRouteMethodMatching",
		"HTTPRouteResponseHeaderModification", "HTTPRoutePortRedirect", "HTTPRouteSchemeRedirect", "HTTPRoutePathRedirect",
		"HTTPRouteHostRewrite", "HTTPRoutePathRewrite", "HTTPRouteRequestMirror", "HTTPRouteRequestTimeout", "HTTPRouteBackendTimeout", "BackendTLSPolicy"}
	edge.GatewayAPI = schema.GatewayAPI{Version: "v1.3", Channel: "experimental", WellKnownCACertificates: &no, Features: contourFeatures}
	for i := range designs {
		if designs[i].Name != "platform" {
			continue
		}
		_, err := render.Render(ctx, &designs[i], &edge, render.Options{Revision: "r1", Repo: render.NewRepo(fsys)})
		var rerr *render.Error
		if !errors.As(err, &rerr) || rerr.Path != `ingress.hosts."www.example.com".routes[0].backends` || !strings.Contains(rerr.Message, "plain HTTP") {
			t.Fatalf("upstream TLS on a controller without system roots: %v, want refused at the legacy route", err)
		}
	}
	edge.GatewayAPI.WellKnownCACertificates = nil

	c, err := fleet.Connect(edge, tc.Config(), fleet.DefaultClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Live.Stop()
	// The GatewayClass is the operator's, as is the controller behind it.
	class := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
		"metadata": map[string]any{"name": "meshcd"},
		"spec":     map[string]any{"controllerName": "projectcontour.io/gateway-controller"},
	}}
	m, err := c.Live.Mapping(class.GroupVersionKind())
	must(t, err)
	_, err = c.Resource(m, "").Create(ctx, class, metav1.CreateOptions{})
	must(t, err)
	var contours []*testenv.Contour
	for _, gw := range []string{"edge/ingress-edge", "search/ingress-search"} {
		ct, err := tc.StartContour(ctx, testenv.ContourOptions{ExternalNameServices: true, Gateway: gw})
		if err != nil {
			t.Fatal(err)
		}
		defer ct.Close()
		contours = append(contours, ct)
	}

	r := New()
	var bundles []*render.Bundle
	for i := range designs {
		d := &designs[i]
		b, err := render.Render(ctx, d, &edge, render.Options{Revision: "r1", Repo: render.NewRepo(fsys)})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := r.Sync(ctx, c, b, options(d)); err != nil || res.Error != "" {
			t.Fatalf("%s: %v %s", d.Name, err, res.Error)
		}
		bundles = append(bundles, b)
	}
	// The ingress objects; the mesh's own routes wait for Linkerd, which this cluster lacks,
	// and say so.
	refused := "gateway.networking.k8s.io/BackendTLSPolicy edge/ext-legacy-api-example-net"
	for _, b := range bundles {
		var bad []ObjectStatus
		within(t, 30*time.Second, func() bool {
			bad = nil
			for _, o := range Compute(c, b).NotReady {
				switch {
				case o.Object == refused && o.Status == "Failed" && strings.Contains(o.Message, "WellKnownCACertificates is unsupported"):
				case strings.Contains(o.Object, "/ingress-") || strings.Contains(o.Object, "BackendTLSPolicy"):
					bad = append(bad, o)
				case o.Status != "InProgress" || !strings.Contains(o.Message, "no controller"):
					bad = append(bad, o)
				}
			}
			return len(bad) == 0
		}, func() string { return fmt.Sprintf("design %s: %+v\n%s", b.Design, bad, contours[0].Log()) })
	}
	if h := Compute(c, bundles[0]); h.Status != "Failed" {
		t.Errorf("platform's health with its upstream TLS refused: %+v, want Failed", h)
	}

	routes, err := contours[0].Routes(ctx)
	must(t, err)
	wantJSON(t, "plain HTTP", envoyRoute(t, routes, "http-80", "www.example.com", "/"), "redirect", `{"scheme_redirect":"https"}`)
	shop := envoyRouteBy(t, routes, "https-443/www.example.com", "www.example.com", "path_separated_prefix", "/shop")
	wantJSON(t, "shop's timeout", shop, "route.timeout", `"5s"`)
	wantJSON(t, "shop's header", shop, "request_headers_to_add", `[{"append_action":"OVERWRITE_IF_EXISTS_OR_ADD","header":{"key":"X-Team","value":"shop"}}]`)
	for _, c := range []struct{ path, want string }{
		{"/shop", "shop/checkout-canary,shop/checkout-stable /"},
		{"/shop/cart", "shop/checkout-canary,shop/checkout-stable /cart"},
		{"/shopping", "edge/frontend /shopping"},
		{"/search", "search/query /search"},
		{"/searching", "edge/frontend /searching"},
		{"/legacy/v1", "edge/ext-legacy-api-example-net /legacy/v1"},
		{"/legacyx", "edge/frontend /legacyx"},
		// exact paths (this one rewritten whole), then regexes, then prefixes, a claim's
		// joined to its prefix
		{"/legacy/v2/reports", "edge/frontend /legacy/v2/reports"},
		{"/legacy/v2/reports/q3", "edge/frontend /legacy/v2/reports/q3"},
		{"/legacy/v2/reportsx", "edge/ext-legacy-api-example-net /legacy/v2/reportsx"},
		{"/legacy/ping", "edge/frontend /ping"},
		{"/legacy/ping/x", "edge/ext-legacy-api-example-net /legacy/ping/x"},
		{"/legacy/42", "edge/frontend /legacy/42"},
		{"/legacy/42/x", "edge/ext-legacy-api-example-net /legacy/42/x"},
		{"/shop/", "shop/checkout-canary /shop/"},
		{"/shop/p/42", "shop/checkout-stable /shop/p/42"},
		{"/shop/p/x", "shop/checkout-canary,shop/checkout-stable /p/x"},
	} {
		if got := envoyReaches(t, routes, "https-443/www.example.com", "www.example.com", c.path); got != c.want {
			t.Errorf("www.example.com%s reaches %q, want %q", c.path, got, c.want)
		}
	}
}
