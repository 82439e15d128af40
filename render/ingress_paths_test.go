package render

import (
	"fmt"
	"io/fs"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/meshcd/meshcd/schema"
)

// pathsDesign is a host whose routes are listed in an order no provider tries them in: the
// front page first, an exact health path (rewritten whole) and a versioned API by regex last.
func pathsDesign(rewrite *schema.Rewrite) *schema.Design {
	to := func(svc, version string) []schema.IngressBackend {
		return []schema.IngressBackend{{Service: svc, Version: version, Weight: 100}}
	}
	versions := map[string]schema.Version{"v1": {Labels: map[string]string{"version": "v1"}}, "v2": {Labels: map[string]string{"version": "v2"}}}
	return &schema.Design{Name: "web", Namespace: "web",
		Services: map[string]schema.Service{
			"frontend": {Port: 8080, Versions: map[string]schema.Version{"v1": versions["v1"]}, Routes: []schema.Route{{To: map[string]int{"v1": 100}}}},
			"api":      {Port: 8080, Versions: versions, Routes: []schema.Route{{To: map[string]int{"v1": 100}}}},
		},
		Ingress: &schema.Ingress{Hosts: map[string]schema.VirtualHost{"www.example.com": {Routes: []schema.IngressRoute{
			{Prefix: "/", Backends: to("frontend", "")},
			{Prefix: "/api", Backends: to("api", "v1")},
			{Prefix: "/", Exact: "/api/v1/health", Backends: to("frontend", ""), Rewrite: rewrite},
			{Prefix: "/", Regex: "/api/v[0-9]+/.*", Backends: to("api", "v2")},
		}}}},
	}
}

// TestIstioIngressTriesRoutesInPrecedence: Istio tries a VirtualService's routes in the order
// given, so meshcd orders them as Contour and Gateway API do: exact paths, then regexes, then
// prefixes, longest first. Each request is matched here as Istio matches it.
func TestIstioIngressTriesRoutesInPrecedence(t *testing.T) {
	d := pathsDesign(&schema.Rewrite{Path: "/healthz"})
	c := schema.Cluster{Name: "edge", Mesh: "istio", Ingress: "istio"}
	b, err := Render(t.Context(), d, &c, Options{Revision: "r"})
	if err != nil {
		t.Fatal(err)
	}
	var routes []any
	for _, o := range b.Objects {
		if o.GetKind() == "VirtualService" && o.GetName() == "ingress-www-example-com" {
			routes = o.Object["spec"].(map[string]any)["http"].([]any)
		}
	}
	for _, c := range []struct{ path, want string }{
		{"/", "frontend /"},
		{"/about", "frontend /about"},
		{"/api", "api/v1 /api"},
		{"/api/x", "api/v1 /api/x"},
		{"/apix", "frontend /apix"},
		{"/api/v2/x", "api/v2 /api/v2/x"},
		{"/api/v1/health", "frontend /healthz"},
		{"/api/v1/health/x", "api/v2 /api/v1/health/x"},
	} {
		if got := istioReaches(routes, c.path); got != c.want {
			t.Errorf("%s reaches %q, want %q (routes %v)", c.path, got, c.want, routes)
		}
	}
}

// istioReaches matches a path against a VirtualService's HTTP routes as Istio does (the first
// route with a matching uri) and says where it goes (service[/subset]) and with what path.
func istioReaches(routes []any, path string) string {
	for _, r := range routes {
		route := r.(map[string]any)
		for _, m := range route["match"].([]any) {
			uri := m.(map[string]any)["uri"].(map[string]any)
			matched := ""
			switch {
			case uri["exact"] != nil && uri["exact"] == path:
				matched = path
			case uri["prefix"] != nil && strings.HasPrefix(path, uri["prefix"].(string)):
				matched = uri["prefix"].(string)
			case uri["regex"] != nil && regexp.MustCompile("^(?:"+uri["regex"].(string)+")$").MatchString(path):
				matched = path
			default:
				continue
			}
			upstream := path
			if rw, ok := route["rewrite"].(map[string]any); ok {
				if u, ok := rw["uri"].(string); ok {
					upstream = u + strings.TrimPrefix(path, matched)
				}
				if rr, ok := rw["uriRegexRewrite"].(map[string]any); ok {
					upstream = regexp.MustCompile(rr["match"].(string)).ReplaceAllString(path, rr["rewrite"].(string))
				}
			}
			dest := route["route"].([]any)[0].(map[string]any)["destination"].(map[string]any)
			name := strings.Split(dest["host"].(string), ".")[0]
			if s, ok := dest["subset"].(string); ok {
				name += "/" + s
			}
			return name + " " + upstream
		}
	}
	return "no route"
}

// TestEdgeExactAndRegexPaths: exact and regex paths, and whole-path rewrites, render for
// each provider; a claim's are joined to its prefix as Contour joins an include's.
func TestEdgeExactAndRegexPaths(t *testing.T) {
	d := pathsDesign(&schema.Rewrite{Path: "/healthz"})
	d.Ingress.Claims = []schema.Claim{{Host: "shop.example.com", Prefix: "/shop", Owner: "edge", Routes: []schema.IngressRoute{
		{Prefix: "/", Exact: "/", Backends: []schema.IngressBackend{{Service: "api", Version: "v2", Weight: 100}}},
		{Prefix: "/", Regex: "/p/[0-9]+|/q", Backends: []schema.IngressBackend{{Service: "api", Weight: 100}}},
	}}}
	c := schema.Cluster{Name: "edge", Mesh: "istio", GatewayAPI: schema.GatewayAPI{Version: "v1.3"}}
	// Istio merges a claim's routes into the owner's under its prefix, and refuses a regex
	// there.
	c.Ingress = "istio"
	refusedBy(t, d, c, nil, []string{"istio"}, "ingress.claims[0].routes[1].regex", "refuses a regex there")
	for provider, wants := range map[string][]string{
		"istio": {"- uri:\n        exact: /api/v1/health\n    rewrite:\n      uri: /healthz\n", "- uri:\n        regex: /api/v[0-9]+/.*\n",
			"- uri:\n        exact: /shop/\n"},
		"gateway-api": {"- path:\n        type: Exact\n        value: /api/v1/health\n", "path:\n          replaceFullPath: /healthz\n          type: ReplaceFullPath\n",
			"- path:\n        type: RegularExpression\n        value: /api/v[0-9]+/.*\n", "type: Exact\n        value: /shop/\n",
			"type: RegularExpression\n        value: /shop(?:/p/[0-9]+|/q)\n", "# warning: ingress www.example.com: regex /api/v[0-9]+/.*: Gateway API leaves a path regex to the controller"},
	} {
		c.Ingress = provider
		d := d
		if provider == "istio" {
			claimed := *d.Ingress
			claimed.Claims = []schema.Claim{d.Ingress.Claims[0]}
			claimed.Claims[0].Routes = claimed.Claims[0].Routes[:1]
			dd := *d
			dd.Ingress = &claimed
			d = &dd
		}
		b, err := Render(t.Context(), d, &c, Options{Revision: "r"})
		text := bundleText(b, err)
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s: no %q in:\n%s", provider, want, text)
			}
		}
	}
	refusedBy(t, d, c, nil, []string{"contour"}, `ingress.hosts."www.example.com".routes[2].rewrite.path`, "contour rewrites only the prefix a route matched")

	// Contour: the paths as conditions, a claim's relative to the prefix it is included under.
	d.Ingress.Hosts["www.example.com"].Routes[2].Rewrite = nil
	c.Ingress = "contour"
	b, err := Render(t.Context(), d, &c, Options{Revision: "r"})
	text := bundleText(b, err)
	for _, want := range []string{"  - conditions:\n    - exact: /api/v1/health\n", "  - conditions:\n    - regex: /api/v[0-9]+/.*\n",
		"  - conditions:\n    - exact: /\n    services:\n    - name: api-v2\n", "  - conditions:\n    - regex: /p/[0-9]+|/q\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("contour: no %q in:\n%s", want, text)
		}
	}

	// A regex rewrite is Istio's alone.
	d.Ingress.Claims[0].Routes = d.Ingress.Claims[0].Routes[:1]
	d.Ingress.Hosts["www.example.com"].Routes[1].Rewrite = &schema.Rewrite{Regex: &schema.RegexRewrite{Match: "^/api/(v[0-9]+)/(.*)$", Substitution: "/\\2?version=\\1"}}
	c.Ingress = "istio"
	b, err = Render(t.Context(), d, &c, Options{Revision: "r"})
	if text := bundleText(b, err); !strings.Contains(text, "    rewrite:\n      uriRegexRewrite:\n        match: ^/api/(v[0-9]+)/(.*)$\n        rewrite: /\\2?version=\\1\n") {
		t.Errorf("istio: no regex rewrite in:\n%s", text)
	}
	refusedBy(t, d, c, nil, []string{"contour", "gateway-api"}, `ingress.hosts."www.example.com".routes[1].rewrite.regex`, "only istio renders one")
}

// TestIstioIngressJWT: where the cluster names the ingress gateway's namespace, a host's JWT
// on Istio ingress is a RequestAuthentication and a DENY policy there, kept to the host and to
// the routes that require a token; each request is judged here as Istio judges it. Without the
// namespace, a regex route beside an open one, and a team opening its own route, are refused.
func TestIstioIngressJWT(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.JWT = &schema.JWT{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/jwks.json"}
	open := false
	vh.Routes[1].JWT = &open // the front page
	regex := vh.Routes[len(vh.Routes)-1]
	// and the legacy API's health check open inside its protected prefix
	health := schema.IngressRoute{Prefix: "/", Exact: "/legacy/health", JWT: &open, Backends: vh.Routes[0].Backends}
	vh.Routes = append(vh.Routes[:len(vh.Routes)-1], health)
	d.Ingress.Hosts["www.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	c.Ingress = "istio"
	refusedBy(t, d, c, files, []string{"istio"}, `ingress.hosts."www.example.com".jwt`, "unless the cluster names the ingress gateway's namespace")

	c.Istio.IngressNamespace = "istio-system"
	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := gatewayPolicy(b, "ingress-www-example-com-require-jwt")["rules"].([]any)
	if rules == nil {
		t.Fatalf("no require-jwt policy in istio-system:\n%s", bundleText(b, nil))
	}
	for path, refused := range map[string]bool{
		"/": false, "/about": false, "/shopping": false, "/legacy": true, "/legacy/v1": true,
		"/shop": true, "/shop/cart": true, "/search/q": true, "/favicon.ico": true, "/favicon.icox": false,
		"/legacy/health": false, "/legacy/health/x": true,
	} {
		if got := istioRefuses(rules, "www.example.com", path, "198.51.100.1", false); got != refused {
			t.Errorf("www.example.com%s without a token: refused %v, want %v", path, got, refused)
		}
	}
	if istioRefuses(rules, "search.example.com", "/legacy", "198.51.100.1", false) {
		t.Error("the policy refuses another host's requests")
	}
	for _, r := range rules {
		if op := r.(map[string]any)["to"].([]any)[0].(map[string]any)["operation"].(map[string]any); fmt.Sprint(op["ports"]) != "[8443]" {
			t.Errorf("a rule names ports %v, want the gateway's HTTPS port only (IST0133): %v", op["ports"], r)
		}
	}
	// A passthrough host on the same gateway port would have all its connections refused.
	d.Ingress.Hosts["db.example.com"] = schema.VirtualHost{Passthrough: &schema.Passthrough{Backends: []schema.IngressBackend{{Service: "frontend", Weight: 100}}}}
	refusedBy(t, d, c, files, []string{"istio"}, `ingress.hosts."db.example.com".passthrough`, "in a connection it does not open")
	delete(d.Ingress.Hosts, "db.example.com")

	vh.Routes = append(vh.Routes, regex)
	d.Ingress.Hosts["www.example.com"] = vh
	refusedBy(t, d, c, files, []string{"istio"}, `ingress.hosts."www.example.com".routes[4].regex`, "match paths exactly or by prefix")

	_, shop, files := edgeDesign(t, "shop")
	shop.Ingress.Claims[0].Routes[0].JWT = &open
	refusedBy(t, shop, c, files, []string{"istio"}, "ingress.claims[0].routes[0].jwt", "a team's route cannot open itself there")
}

// istioRefuses judges a request against a policy's rules as Istio does (for DENY, refused; for
// CUSTOM, sent to the provider): a rule matches when its source (anyone without one; no token
// of the issuer; the client's address in or out of blocks), hosts and paths match and its
// notPaths do not.
func istioRefuses(rules []any, host, path, addr string, token bool) bool {
	match := func(patterns []any, v string) bool {
		for _, p := range patterns {
			p := p.(string)
			if base, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(v, base) || p == v {
				return true
			}
		}
		return false
	}
	inBlocks := func(blocks []any) bool {
		for _, b := range blocks {
			if netip.MustParsePrefix(b.(string)).Contains(netip.MustParseAddr(addr)) {
				return true
			}
		}
		return false
	}
	for _, r := range rules {
		rule := r.(map[string]any)
		source := map[string]any{} // no from: anyone
		if from, ok := rule["from"].([]any); ok {
			source = from[0].(map[string]any)["source"].(map[string]any)
		}
		refused := true
		for k, v := range source {
			switch k {
			case "notRequestPrincipals":
				refused = refused && !token
			case "ipBlocks", "remoteIpBlocks":
				refused = refused && inBlocks(v.([]any))
			case "notIpBlocks", "notRemoteIpBlocks":
				refused = refused && !inBlocks(v.([]any))
			}
		}
		op := rule["to"].([]any)[0].(map[string]any)["operation"].(map[string]any)
		if hosts, _ := op["hosts"].([]any); !refused || !match(hosts, host) {
			continue
		}
		if paths, ok := op["paths"].([]any); ok && !match(paths, path) {
			continue
		}
		if notPaths, ok := op["notPaths"].([]any); ok && match(notPaths, path) {
			continue
		}
		return true
	}
	return false
}

// TestIstioIngressAddressRules: where the cluster names the ingress gateway's namespace, a
// host's address rules and a route's own become DENY policies there, each path held to the
// rule its route is; a team's route with a rule of its own, under a host without one, gets its
// own policy. Each request is judged here as Istio judges it.
func TestIstioIngressAddressRules(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.Access = &schema.IPAccess{Deny: []string{"203.0.113.0/24"}, Source: "forwarded"}
	vh.Routes[0].Access = &schema.IPAccess{Allow: []string{"192.0.2.0/24"}, Source: "forwarded"} // the legacy API, for the office
	vh.Routes = vh.Routes[:len(vh.Routes)-1]                                                     // the regex route
	d.Ingress.Hosts["www.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	c.Ingress = "istio"
	refusedBy(t, d, c, files, []string{"istio"}, `ingress.hosts."www.example.com".access`, "unless the cluster names the ingress gateway's namespace")
	c.Istio.IngressNamespace = "istio-system"
	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := gatewayPolicy(b, "ingress-www-example-com-access")["rules"].([]any)
	for _, c := range []struct {
		path, addr string
		refused    bool
	}{
		{"/legacy/v1", "192.0.2.7", false}, {"/legacy/v1", "198.51.100.1", true}, {"/legacy", "203.0.113.5", true},
		{"/", "203.0.113.5", true}, {"/", "198.51.100.1", false}, {"/shop/cart", "203.0.113.5", true},
		{"/shop/cart", "192.0.2.7", false}, {"/favicon.ico", "203.0.113.5", true}, {"/legacyx", "198.51.100.1", false},
	} {
		if got := istioRefuses(rules, "www.example.com", c.path, c.addr, true); got != c.refused {
			t.Errorf("www.example.com%s from %s: refused %v, want %v (rules %v)", c.path, c.addr, got, c.refused, rules)
		}
	}
	if istioRefuses(rules, "search.example.com", "/", "203.0.113.5", true) {
		t.Error("the policy refuses another host's clients")
	}

	// A team's own rule on its claimed route, under a host without one.
	_, shop, files := edgeDesign(t, "shop")
	shop.Ingress.Claims[0].Routes[0].Access = &schema.IPAccess{Deny: []string{"198.51.100.0/24"}, Source: "peer"}
	b, err = Render(t.Context(), shop, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	rules, _ = gatewayPolicy(b, "ingress-www-example-com-shop-access")["rules"].([]any)
	for path, refused := range map[string]bool{"/shop/cart": true, "/shop": true, "/shopping": false, "/": false} {
		if got := istioRefuses(rules, "www.example.com", path, "198.51.100.9", true); got != refused {
			t.Errorf("a team's rule: www.example.com%s: refused %v, want %v (rules %v)", path, got, refused, rules)
		}
	}
}

// gatewayPoliciesDesign is examples/edge's platform design for an Istio ingress cluster whose
// gateway runs in gatewayNamespace, with a JWT and an authorization server (the front page
// left open to both) and address rules (the host's, and the legacy API's own); without its
// regex route, which the gateway's policies could not tell apart.
func gatewayPoliciesDesign(t *testing.T, gatewayNamespace string) (*schema.Design, schema.Cluster, fs.FS) {
	t.Helper()
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	open := false
	vh.JWT = &schema.JWT{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/jwks.json", ClaimsToHeaders: map[string]string{"x-user": "sub"}}
	vh.Routes[1].JWT = &open
	vh.ExtAuth, vh.Routes[1].ExtAuth = &schema.ExtAuth{Provider: "opa"}, &open
	vh.Routes = vh.Routes[:len(vh.Routes)-1]
	vh.Access = &schema.IPAccess{Deny: []string{"203.0.113.0/24"}, Source: "forwarded"}
	vh.Routes[0].Access = &schema.IPAccess{Allow: []string{"192.0.2.0/24"}, Source: "forwarded"}
	d.Ingress.Hosts["www.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	c.Ingress, c.Istio.IngressNamespace, c.Istio.ExtAuthProviders = "istio", gatewayNamespace, []string{"opa"}
	return d, c, files
}

// TestIstioIngressExternalAuthorization: where the cluster names the ingress gateway's
// namespace and lists the extension provider, a host's extAuth is a CUSTOM policy there that
// sends the host's requests to the provider, but for the routes left unchecked; a Service in
// place of a provider (Istio checks by provider), a provider on Contour or Gateway API (they
// check by Service), an unlisted provider and a team leaving its route unchecked are refused.
func TestIstioIngressExternalAuthorization(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.ExtAuth = &schema.ExtAuth{Provider: "opa", Timeout: &schema.Duration{Text: "1s"}}
	unchecked := false
	vh.Routes[1].ExtAuth = &unchecked // the front page
	vh.Routes = vh.Routes[:len(vh.Routes)-1]
	d.Ingress.Hosts["www.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	c.Ingress, c.Istio.IngressNamespace = "istio", "istio-system"
	const at = `ingress.hosts."www.example.com".extAuth`
	refusedBy(t, d, c, files, []string{"istio"}, at+".provider", `lists no Istio extension provider "opa"`)
	refusedBy(t, d, c, files, []string{"contour"}, at+".provider", "say extAuth.service and port")
	refusedBy(t, d, c, files, []string{"gateway-api"}, at+".provider", "say extAuth.service and port")

	c.Istio.ExtAuthProviders = []string{"opa"}
	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	spec := gatewayPolicy(b, "ingress-www-example-com-ext-authz")
	if spec == nil || spec["action"] != "CUSTOM" || fmt.Sprint(spec["provider"]) != "map[name:opa]" {
		t.Fatalf("no CUSTOM policy naming opa in istio-system:\n%s", bundleText(b, nil))
	}
	// A CUSTOM rule names no source: a request it matches goes to the provider.
	for path, checked := range map[string]bool{"/": false, "/about": false, "/legacy/v1": true, "/shop/cart": true, "/favicon.ico": true} {
		if got := istioRefuses(spec["rules"].([]any), "www.example.com", path, "198.51.100.1", true); got != checked {
			t.Errorf("www.example.com%s: checked %v, want %v", path, got, checked)
		}
	}
	if w := strings.Join(b.Warnings, "\n"); !strings.Contains(w, "failOpen and timeout are settings of Istio's extension provider opa") {
		t.Errorf("no warning that the timeout is the provider's: %s", w)
	}

	vh.ExtAuth = &schema.ExtAuth{Service: "authz", Port: 9001}
	d.Ingress.Hosts["www.example.com"] = vh
	refusedBy(t, d, c, files, []string{"istio"}, at, "say extAuth.provider")

	_, shop, files := edgeDesign(t, "shop")
	shop.Ingress.Claims[0].Routes[0].ExtAuth = &unchecked
	refusedBy(t, shop, c, files, []string{"istio"}, "ingress.claims[0].routes[0].extAuth", "cannot leave itself unchecked there")
}

// gatewayPolicy is the spec of the bundle's AuthorizationPolicy of this name in istio-system,
// or nil.
func gatewayPolicy(b *Bundle, name string) map[string]any {
	for _, o := range b.Objects {
		if o.GetKind() == "AuthorizationPolicy" && o.GetNamespace() == "istio-system" && o.GetName() == name {
			return o.Object["spec"].(map[string]any)
		}
	}
	return nil
}
