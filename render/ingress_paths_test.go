package render

import (
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
	for provider, wants := range map[string][]string{
		"istio": {"- uri:\n        exact: /api/v1/health\n    rewrite:\n      uri: /healthz\n", "- uri:\n        regex: /api/v[0-9]+/.*\n",
			"- uri:\n        exact: /shop/\n", "- uri:\n        regex: /shop(?:/p/[0-9]+|/q)\n"},
		"gateway-api": {"- path:\n        type: Exact\n        value: /api/v1/health\n", "path:\n          replaceFullPath: /healthz\n          type: ReplaceFullPath\n",
			"- path:\n        type: RegularExpression\n        value: /api/v[0-9]+/.*\n", "type: Exact\n        value: /shop/\n",
			"type: RegularExpression\n        value: /shop(?:/p/[0-9]+|/q)\n", "# warning: ingress www.example.com: regex /api/v[0-9]+/.*: Gateway API leaves a path regex to the controller"},
	} {
		c.Ingress = provider
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
	d.Ingress.Hosts["www.example.com"].Routes[1].Rewrite = &schema.Rewrite{Regex: &schema.RegexRewrite{Match: "^/api/(v[0-9]+)/(.*)$", Substitution: "/\\2?version=\\1"}}
	c.Ingress = "istio"
	b, err = Render(t.Context(), d, &c, Options{Revision: "r"})
	if text := bundleText(b, err); !strings.Contains(text, "    rewrite:\n      uriRegexRewrite:\n        match: ^/api/(v[0-9]+)/(.*)$\n        rewrite: /\\2?version=\\1\n") {
		t.Errorf("istio: no regex rewrite in:\n%s", text)
	}
	refusedBy(t, d, c, nil, []string{"contour", "gateway-api"}, `ingress.hosts."www.example.com".routes[1].rewrite.regex`, "only istio renders one")
}
