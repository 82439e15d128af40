package render

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// request is what a request asks of a service, as a route sees it.
type request struct {
	path, method, host string
}

// asks reports whether the request is one the access rule names (by path, method and host),
// read the way the design language defines it.
func asks(r schema.AccessRule, q request) bool {
	if len(r.Methods) > 0 && !slices.Contains(r.Methods, q.method) {
		return false
	}
	if len(r.Hosts) > 0 && !slices.Contains(r.Hosts, q.host) {
		return false
	}
	return len(r.Paths) == 0 || slices.ContainsFunc(r.Paths, func(p string) bool { return schema.AccessPathWithin(q.path, p) })
}

// linkerdPick is the route and match Linkerd sends a request to, by Gateway API's precedence:
// a matching hostname over none, then an exact path over a prefix, a longer prefix over a
// shorter one, and a method match over none. -1: no route (404).
func linkerdPick(routes []*unstructured.Unstructured, q request) int {
	best, bestScore := -1, []int(nil)
	for i, rt := range routes {
		hosts, _, _ := unstructured.NestedStringSlice(rt.Object, "spec", "hostnames")
		hostScore := 0
		if len(hosts) > 0 {
			if !slices.Contains(hosts, q.host) {
				continue
			}
			hostScore = 1
		}
		rules, _, _ := unstructured.NestedSlice(rt.Object, "spec", "rules")
		for _, m := range rules[0].(map[string]any)["matches"].([]any) {
			m := m.(map[string]any)
			p := m["path"].(map[string]any)
			v, typ := p["value"].(string), p["type"].(string)
			exact, prefixLen := 0, 0
			switch {
			case typ == "Exact" && q.path == v:
				exact = 1
			case typ == "PathPrefix" && (v == "/" || q.path == v || strings.HasPrefix(q.path, v+"/")):
				prefixLen = len(v)
			default:
				continue
			}
			method, hasMethod := m["method"].(string)
			if hasMethod && method != q.method {
				continue
			}
			methodScore := 0
			if hasMethod {
				methodScore = 1
			}
			score := []int{hostScore, exact, prefixLen, methodScore}
			if best < 0 || slices.Compare(score, bestScore) > 0 {
				best, bestScore = i, score
			}
		}
	}
	return best
}

// TestLinkerdRoutesCarryExactlyTheRulesARequestSatisfies renders overlapping path, method and
// host rules for Linkerd and sends requests through the routes the way Linkerd picks one:
// every request must reach a route authorized by exactly the rules that name it, neither more
// (access widened) nor fewer (a caller locked out); who may then send it is each rule's own
// authentication.
func TestLinkerdRoutesCarryExactlyTheRulesARequestSatisfies(t *testing.T) {
	rules := []schema.AccessRule{
		{Namespaces: []string{"web"}, Methods: []string{"GET", "HEAD"}},
		{ServiceAccounts: []string{"ops/admin"}, Paths: []string{"/admin/*"}},
		{IPBlocks: []string{"10.0.0.0/8"}, Paths: []string{"/healthz"}, Methods: []string{"GET"}},
		{Namespaces: []string{"batch"}, Paths: []string{"/api/*", "/admin/reports/*"}, Methods: []string{"POST"}},
		{ServiceAccounts: []string{"ops/admin"}},
		{Namespaces: []string{"web"}, Hosts: []string{"orders.internal"}, Paths: []string{"/api/*"}},
	}
	d := &schema.Design{Name: "orders", Namespace: "orders", Services: map[string]schema.Service{"orders": {
		Port: 8080, Protocol: "http", MTLS: "strict",
		Authorization: &schema.Authorization{Allow: rules},
	}}}
	c := &schema.Cluster{Name: "west", Mesh: schema.MeshLinkerd}
	b, err := Render(t.Context(), d, c, Options{Revision: "r", Repo: NewRepo(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(b.Warnings, func(w string) bool { return strings.Contains(w, "probes") }) {
		t.Errorf("no warning that Linkerd stops authorizing probes: %q", b.Warnings)
	}
	var routes []*unstructured.Unstructured
	authorized := map[string][]int{} // route → rules whose policies target it
	for _, o := range b.Objects {
		switch o.GetKind() {
		case "HTTPRoute":
			routes = append(routes, o)
		case "AuthorizationPolicy":
			target, _, _ := unstructured.NestedString(o.Object, "spec", "targetRef", "name")
			var rule int
			if _, err := fmt.Sscanf(o.GetName()[strings.LastIndex(o.GetName(), "-allow-")+len("-allow-"):], "%d", &rule); err != nil {
				t.Fatalf("policy %s: %v", o.GetName(), err)
			}
			authorized[target] = append(authorized[target], rule)
		}
	}
	paths := []string{"/", "/healthz", "/healthz/x", "/admin", "/admin/users", "/admin/reports/q1", "/api/orders", "/apix", "/other"}
	methods := []string{"GET", "HEAD", "POST", "DELETE"}
	hosts := []string{"orders.orders", "orders.internal"}
	checked := 0
	for _, path := range paths {
		for _, method := range methods {
			for _, host := range hosts {
				q := request{path, method, host}
				var want []int
				for i, r := range rules {
					if asks(r, q) {
						want = append(want, i)
					}
				}
				var got []int
				if k := linkerdPick(routes, q); k >= 0 {
					got = slices.Sorted(slices.Values(authorized[routes[k].GetName()]))
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s %s%s: authorized by rules %v, want %v", method, host, path, got, want)
				}
				checked++
			}
		}
	}
	t.Logf("%d requests over %d routes", checked, len(routes))
}

// TestMeshAuthorizationPerProvider: allow and deny rules with conditions become Istio ALLOW and
// DENY policies; Linkerd, which has no deny, and plain Gateway API, which has no policy at all,
// refuse the design at the field rather than open the service.
func TestMeshAuthorizationPerProvider(t *testing.T) {
	a := &schema.Authorization{
		Allow: []schema.AccessRule{{ServiceAccounts: []string{"web/frontend"}, Paths: []string{"/api/*"}, Methods: []string{"GET"}}, {IPBlocks: []string{"10.1.0.0/16"}, Ports: []int{9090}}},
		Deny:  []schema.AccessRule{{Namespaces: []string{"web"}, Paths: []string{"/internal/*", "/*"}, Hosts: []string{"orders.example"}}},
	}
	d := &schema.Design{Name: "orders", Namespace: "orders", Services: map[string]schema.Service{"orders": {Port: 8080, Protocol: "http", Authorization: a}}}
	c := &schema.Cluster{Name: "west", Mesh: schema.MeshIstio}
	b, err := Render(t.Context(), d, c, Options{Revision: "r", Repo: NewRepo(nil)})
	if err != nil {
		t.Fatal(err)
	}
	text := bundleText(b, nil)
	for _, want := range []string{
		"  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principals:\n        - cluster.local/ns/web/sa/frontend\n    to:\n    - operation:\n        methods:\n        - GET\n        paths:\n        - /api\n        - /api/*\n  - from:\n    - source:\n        ipBlocks:\n        - 10.1.0.0/16\n    to:\n    - operation:\n        ports:\n        - \"9090\"\n",
		"  name: orders-deny\n",
		"  action: DENY\n  rules:\n  - from:\n    - source:\n        namespaces:\n        - web\n    to:\n    - operation:\n        hosts:\n        - orders.example\n        paths:\n        - /internal\n        - /internal/*\n        - /*\n        ports:\n        - \"8080\"\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("istio: no %q in:\n%s", want, text)
		}
	}

	// Deny alone: everything else passes, so no ALLOW policy is rendered.
	d.Services["orders"] = schema.Service{Port: 8080, Protocol: "http", Authorization: &schema.Authorization{Deny: a.Deny}}
	b, err = Render(t.Context(), d, c, Options{Revision: "r", Repo: NewRepo(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if text := bundleText(b, nil); strings.Contains(text, "action: ALLOW") || !strings.Contains(text, "action: DENY") {
		t.Errorf("deny alone: want one DENY policy and no ALLOW, got:\n%s", text)
	}

	for mesh, want := range map[schema.Mesh]string{
		schema.MeshLinkerd:    "services.orders.authorization.deny: linkerd has no deny rules",
		schema.MeshGatewayAPI: "services.orders.authorization: gateway-api has no authorization policy",
	} {
		c := &schema.Cluster{Name: "west", Mesh: mesh}
		_, err := Render(t.Context(), d, c, Options{Revision: "r", Repo: NewRepo(nil)})
		var rerr *Error
		if !errors.As(err, &rerr) || !strings.HasPrefix(rerr.Path+": "+rerr.Message, want) {
			t.Errorf("%s: %v, want %q", mesh, err, want)
		}
	}
}

// TestEdgeAddressRules: a host's and a route's address rules become Contour's ip filters, the
// route's held to the host's (Contour replaces the host's rules with a route's); Gateway API
// and Istio ingress refuse them at the field.
func TestEdgeAddressRules(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.Access = &schema.IPAccess{Deny: []string{"203.0.113.0/24"}, Source: "forwarded"}
	vh.Routes[0].Access = &schema.IPAccess{Deny: []string{"198.51.100.7"}, Source: "forwarded"}
	d.Ingress.Hosts["www.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	c.Ingress, c.Contour.ExternalNameServices = "contour", true
	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	text := bundleText(b, nil)
	for _, want := range []string{
		"    fqdn: www.example.com\n    ipDenyPolicy:\n    - cidr: 203.0.113.0/24\n      source: Remote\n",                         // the host's
		"    ipDenyPolicy:\n    - cidr: 203.0.113.0/24\n      source: Remote\n    - cidr: 198.51.100.7/32\n      source: Remote\n", // the route's, with the host's
	} {
		if !strings.Contains(text, want) {
			t.Errorf("contour: no %q in:\n%s", want, text)
		}
	}
	refusedBy(t, d, c, files, []string{"gateway-api", "istio"}, `ingress.hosts."www.example.com".access`, "by address")
}

// TestExternalAuthorization: a host's authorization server becomes Contour's virtual host
// authorization with an ExtensionService, and Gateway API's ExternalAuth filter where the
// cluster serves it and every route is the design's own; elsewhere it is an error, since
// leaving it out would open the host.
func TestExternalAuthorization(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.ExtAuth = &schema.ExtAuth{Service: "authz", Port: 9001, Timeout: &schema.Duration{Text: "500ms"}}
	unchecked := false
	vh.Routes[1].ExtAuth = &unchecked
	d.Ingress.Hosts["www.example.com"] = vh
	render := func(c schema.Cluster) (string, []string, error) {
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			return "", nil, err
		}
		return bundleText(b, nil), b.Warnings, nil
	}
	c := d.TargetClusters(fleet)[0]
	c.Ingress, c.Contour.ExternalNameServices = "contour", true
	text, _, err := render(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kind: ExtensionService\n",
		"  protocol: h2c\n  services:\n  - name: authz\n    port: 9001\n",
		"    authorization:\n      extensionRef:\n        name: authz-extauth\n        namespace: edge\n      responseTimeout: 500ms\n",
		"  - authPolicy:\n      disabled: true\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("contour: no %q in:\n%s", want, text)
		}
	}

	const at = `ingress.hosts."www.example.com".extAuth`
	refusedBy(t, d, c, files, []string{"istio"}, at, "unless the cluster names the ingress gateway's namespace")
	refusedBy(t, d, c, files, []string{"gateway-api"}, at, "experimental channel from v1.4")
	c.Ingress = "gateway-api"
	c.GatewayAPI = schema.GatewayAPI{Version: "v1.6", Channel: "experimental"}
	refusedBy(t, d, c, files, []string{"gateway-api"}, at, "routes claimed under /shop, /search")
	c.GatewayAPI.Features = []string{"HTTPRouteRetry"}
	refusedBy(t, d, c, files, []string{"gateway-api"}, at, "does not list HTTPRouteExternalAuth")

	// Without delegations every route is the design's own: each gets the filter, but the one
	// left unchecked.
	c.GatewayAPI.Features = nil
	vh.Delegate = nil
	vh.ExtAuth.FailOpen = true
	d.Ingress.Hosts["www.example.com"] = vh
	text, warnings, err := render(c)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(text, "    - externalAuth:\n        backendRef:\n          name: authz\n          port: 9001\n        grpc: {}\n        protocol: GRPC\n      type: ExternalAuth\n"); n != len(vh.Routes)-1 {
		t.Errorf("gateway-api: %d rules with the ExternalAuth filter, want %d (all but the front page):\n%s", n, len(vh.Routes)-1, text)
	}
	if w := strings.Join(warnings, "\n"); !strings.Contains(w, "extAuth.failOpen") || !strings.Contains(w, "extAuth.timeout") {
		t.Errorf("gateway-api: no warnings for fail-open and the timeout: %s", w)
	}
}

// refusedBy checks that rendering the design for each of the ingress providers fails at path
// with a message that says says.
func refusedBy(t *testing.T, d *schema.Design, c schema.Cluster, files fs.FS, providers []string, path, says string) {
	t.Helper()
	for _, provider := range providers {
		c.Ingress = provider
		_, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		var rerr *Error
		if !errors.As(err, &rerr) || rerr.Path != path || !strings.Contains(rerr.Message, says) {
			t.Errorf("%s (%s): %v, want an error at %s saying %q", provider, c.GatewayAPI, err, path, says)
		}
	}
}

// meshPolicyDesign is a service that requires a token and caps its requests, which only some
// meshes can say.
func meshPolicyDesign() *schema.Design {
	return &schema.Design{Name: "orders", Namespace: "orders", Services: map[string]schema.Service{"orders": {
		Port: 8080, Protocol: "http", MTLS: "strict",
		JWT:       &schema.JWT{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/jwks.json", Audiences: []string{"orders"}},
		RateLimit: &schema.RateLimit{Requests: 600, Unit: "minute", Burst: 20},
	}}}
}

// TestMeshTokensAndRateLimits: a service's JWT becomes Istio's RequestAuthentication plus a
// DENY policy for requests without a token (a RequestAuthentication alone lets them in), and
// its rate limit Linkerd's HTTPLocalRateLimitPolicy in whole requests per second; where a mesh
// cannot say one, the design is refused at the field.
func TestMeshTokensAndRateLimits(t *testing.T) {
	d := meshPolicyDesign()
	render := func(mesh schema.Mesh) (string, []string, error) {
		b, err := Render(t.Context(), d, &schema.Cluster{Name: "c", Mesh: mesh}, Options{Revision: "r", Repo: NewRepo(nil)})
		if err != nil {
			return "", nil, err
		}
		return bundleText(b, nil), b.Warnings, nil
	}
	refused := func(mesh schema.Mesh, path, says string) {
		t.Helper()
		_, _, err := render(mesh)
		var rerr *Error
		if !errors.As(err, &rerr) || rerr.Path != path || !strings.Contains(rerr.Message, says) {
			t.Errorf("%s: %v, want an error at %s saying %q", mesh, err, path, says)
		}
	}
	refused(schema.MeshIstio, "services.orders.rateLimit", "EnvoyFilter")
	refused(schema.MeshLinkerd, "services.orders.jwt", "does not validate tokens")
	refused(schema.MeshGatewayAPI, "services.orders.jwt", "no token validation")

	svc := d.Services["orders"]
	svc.RateLimit = nil
	svc.JWT.From = &schema.TokenFrom{Header: "x-token", Prefix: "Token "}
	svc.JWT.ClaimsToHeaders = map[string]string{"x-user": "sub"}
	d.Services["orders"] = svc
	text, _, err := render(schema.MeshIstio)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kind: RequestAuthentication\n",
		"  jwtRules:\n  - audiences:\n    - orders\n    fromHeaders:\n    - name: x-token\n      prefix: 'Token '\n    issuer: https://auth.example.com\n    jwksUri: https://auth.example.com/jwks.json\n    outputClaimToHeaders:\n    - claim: sub\n      header: x-user\n",
		"  name: orders-require-jwt\n",
		"  action: DENY\n  rules:\n  - from:\n    - source:\n        notRequestPrincipals:\n        - '*'\n    to:\n    - operation:\n        ports:\n        - \"8080\"\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("istio: no %q in:\n%s", want, text)
		}
	}

	d = meshPolicyDesign()
	svc = d.Services["orders"]
	svc.JWT = nil
	d.Services["orders"] = svc
	text, warnings, err := render(schema.MeshLinkerd)
	if err != nil {
		t.Fatal(err)
	}
	if want := "kind: HTTPLocalRateLimitPolicy\nmetadata:\n  annotations:"; !strings.Contains(text, want) || !strings.Contains(text, "  targetRef:\n    group: policy.linkerd.io\n    kind: Server\n    name: orders-http\n  total:\n    requestsPerSecond: 10\n") {
		t.Errorf("linkerd: no rate limit of 10 per second on the Server in:\n%s", text)
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "rateLimit.burst: linkerd's local rate limit has no burst") {
		t.Errorf("linkerd: no warning about the burst: %q", warnings)
	}
	svc.RateLimit.Requests = 100
	d.Services["orders"] = svc
	refused(schema.MeshLinkerd, "services.orders.rateLimit", "whole requests per second")

	// Istio, where the cluster opts in to EnvoyFilters: Envoy's local rate limit on the
	// service's inbound port, 600 a minute with a bucket of 620 (the burst of 20 above them, as
	// Contour means it).
	b, err := Render(t.Context(), meshPolicyDesign(), &schema.Cluster{Name: "c", Mesh: schema.MeshIstio, Istio: schema.IstioConfig{EnvoyFilters: true}}, Options{Revision: "r"})
	if err != nil {
		t.Fatal(err)
	}
	text = bundleText(b, nil)
	for _, want := range []string{
		"kind: EnvoyFilter\nmetadata:\n  annotations:",
		"  name: orders-ratelimit\n",
		"      context: SIDECAR_INBOUND\n      listener:\n        filterChain:\n          filter:\n            name: envoy.filters.network.http_connection_manager\n            subFilter:\n              name: envoy.filters.http.router\n        portNumber: 8080\n",
		"        name: envoy.filters.http.local_ratelimit\n",
		"          token_bucket:\n            fill_interval: 60s\n            max_tokens: 620\n            tokens_per_fill: 600\n",
		"  workloadSelector:\n    labels:\n      app: orders\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("istio with envoyFilters: no %q in:\n%s", want, text)
		}
	}
}

// TestEdgeTokenLocationAndClaims: Contour reads tokens from Authorization: Bearer only and
// copies no claims, so a host that says otherwise is refused rather than rendered to refuse
// every client or to leave upstreams without the headers they rely on.
func TestEdgeTokenLocationAndClaims(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.JWT = &schema.JWT{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/jwks.json", From: &schema.TokenFrom{Query: "token"}}
	d.Ingress.Hosts["www.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	c.Contour.ExternalNameServices = true
	refusedBy(t, d, c, files, []string{"contour"}, `ingress.hosts."www.example.com".jwt.from`, "Authorization: Bearer only")
	vh.JWT.From, vh.JWT.ClaimsToHeaders = nil, map[string]string{"x-user": "sub"}
	refusedBy(t, d, c, files, []string{"contour"}, `ingress.hosts."www.example.com".jwt.claimsToHeaders`, "does not copy claims")
}

// TestMeshExternalAuthorization: a service's extAuth becomes an Istio CUSTOM policy naming the
// cluster's extension provider, on the service's port and but for the skipped paths (a prefix
// as itself and everything below it); a provider the cluster does not list, and the meshes
// without external authorization, are refused rather than left open.
func TestMeshExternalAuthorization(t *testing.T) {
	d := meshPolicyDesign()
	svc := d.Services["orders"]
	svc.JWT, svc.RateLimit = nil, nil
	svc.ExtAuth = &schema.MeshExtAuth{Provider: "opa", SkipPaths: []string{"/healthz", "/debug/*"}}
	d.Services["orders"] = svc
	c := schema.Cluster{Name: "east", Mesh: schema.MeshIstio, Istio: schema.IstioConfig{ExtAuthProviders: []string{"opa"}}}
	b, err := Render(t.Context(), d, &c, Options{Revision: "r"})
	if err != nil {
		t.Fatal(err)
	}
	want := "  name: orders-ext-authz\n  namespace: orders\nspec:\n  action: CUSTOM\n  provider:\n    name: opa\n  rules:\n  - to:\n    - operation:\n        notPaths:\n        - /healthz\n        - /debug\n        - /debug/*\n        ports:\n        - \"8080\"\n  selector:\n    matchLabels:\n      app: orders\n"
	if text := bundleText(b, nil); !strings.Contains(text, want) {
		t.Errorf("istio: no %q in:\n%s", want, text)
	}
	for _, c := range []struct {
		cluster    schema.Cluster
		path, says string
	}{
		{schema.Cluster{Name: "west", Mesh: schema.MeshIstio}, "services.orders.extAuth.provider", `cluster west lists no Istio extension provider "opa"`},
		{schema.Cluster{Name: "l", Mesh: schema.MeshLinkerd}, "services.orders.extAuth", "linkerd has no external authorization"},
		{schema.Cluster{Name: "g", Mesh: schema.MeshGatewayAPI}, "services.orders.extAuth", "gateway-api has no external authorization"},
	} {
		_, err := Render(t.Context(), d, &c.cluster, Options{Revision: "r"})
		var rerr *Error
		if !errors.As(err, &rerr) || rerr.Path != c.path || !strings.Contains(rerr.Message, c.says) {
			t.Errorf("%s: %v, want an error at %s saying %q", c.cluster.Name, err, c.path, c.says)
		}
	}
}
