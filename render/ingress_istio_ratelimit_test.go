package render

import (
	"fmt"
	"io/fs"
	"testing"

	"github.com/meshcd/meshcd/schema"
)

// TestIstioIngressRateLimits: where the cluster opts in to EnvoyFilters and names the ingress
// gateway's namespace, a host's and a route's local rate limits become one EnvoyFilter there:
// the design's own (inert) filter, a token bucket on the host's virtual host and one on the
// route, found by the name the route carries in the VirtualService; a team's route is found by
// the name Istio gives it when it merges the team's routes into the owner's. Without the opt-in
// or the namespace, the limit is refused at its field rather than dropped.
func TestIstioIngressRateLimits(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.RateLimit = &schema.RateLimit{Requests: 100, Unit: "second", Burst: 20}
	vh.Routes[0].RateLimit = &schema.RateLimit{Requests: 10, Unit: "minute"} // the legacy API
	d.Ingress.Hosts["www.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	c.Ingress = "istio"
	const at = `ingress.hosts."www.example.com".rateLimit`
	refusedBy(t, d, c, files, []string{"istio"}, at, "istio: envoyFilters: true")
	c.Istio.EnvoyFilters = true
	refusedBy(t, d, c, files, []string{"istio"}, at, "istio: ingressNamespace")
	c.Istio.IngressNamespace = "istio-system"

	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	filter, patches := gatewayRateLimitFilter(t, b, "ingress-ratelimit-edge")
	if filter != "meshcd.local_ratelimit.edge" {
		t.Errorf("the filter is %q, want the design's own", filter)
	}
	host := patchesTo(patches, "VIRTUAL_HOST")
	if len(host) != 1 || dig(host[0], "match", "routeConfiguration", "vhost", "name") != "www.example.com:443" {
		t.Fatalf("want one virtual host patch for www.example.com:443 (Istio's name for the TLS host), got %v", host)
	}
	if got := bucket(host[0], filter); got != "max_tokens=120 tokens_per_fill=100 fill_interval=1s" {
		t.Errorf("host bucket %s, want 100 a second and 20 above", got)
	}
	routes := patchesTo(patches, "HTTP_ROUTE")
	if len(routes) != 1 {
		t.Fatalf("want one route patch, got %v", routes)
	}
	if got := bucket(routes[0], filter); got != "max_tokens=10 tokens_per_fill=10 fill_interval=60s" {
		t.Errorf("route bucket %s, want 10 a minute", got)
	}
	// The route's name reaches exactly the routes of the legacy API.
	name := dig(routes[0], "match", "routeConfiguration", "vhost", "route", "name")
	named := envoyRoutes(t, b, nil, "www.example.com")[name]
	if want := "[exact:/legacy prefix:/legacy/]"; fmt.Sprint(named) != want {
		t.Errorf("Envoy routes named %q match %v, want %s", name, named, want)
	}

	// A team's route under the owner's delegated prefix.
	_, shop, _ := edgeDesign(t, "shop")
	shop.Ingress.Claims[0].Routes[0].RateLimit = &schema.RateLimit{Requests: 5, Unit: "second"}
	sb, err := Render(t.Context(), shop, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	sfilter, spatches := gatewayRateLimitFilter(t, sb, "ingress-ratelimit-shop")
	if sfilter == filter {
		t.Errorf("the team's filter is the owner's %q: both would count one bucket", filter)
	}
	sroutes := patchesTo(spatches, "HTTP_ROUTE")
	if len(sroutes) != 1 || len(patchesTo(spatches, "VIRTUAL_HOST")) != 0 {
		t.Fatalf("want one route patch and no host patch from the team, got %v", spatches)
	}
	sname := dig(sroutes[0], "match", "routeConfiguration", "vhost", "route", "name")
	if got, want := fmt.Sprint(envoyRoutes(t, b, sb, "www.example.com")[sname]), "[exact:/shop prefix:/shop/]"; got != want {
		t.Errorf("merged Envoy routes named %q match %s, want %s", sname, got, want)
	}

}

// gatewayRateLimitFilter returns the name of the local rate limit filter the bundle's
// EnvoyFilter of this name (in istio-system, selecting the ingress gateway) inserts, and its
// patches.
func gatewayRateLimitFilter(t *testing.T, b *Bundle, name string) (string, []map[string]any) {
	t.Helper()
	for _, o := range b.Objects {
		if o.GetKind() != "EnvoyFilter" || o.GetNamespace() != "istio-system" || o.GetName() != name {
			continue
		}
		spec := o.Object["spec"].(map[string]any)
		if got := fmt.Sprint(spec["workloadSelector"]); got != "map[labels:map[istio:ingressgateway]]" {
			t.Errorf("%s selects %s, want the ingress gateway", name, got)
		}
		var patches []map[string]any
		for _, p := range spec["configPatches"].([]any) {
			patches = append(patches, p.(map[string]any))
		}
		filters := patchesTo(patches, "HTTP_FILTER")
		if len(filters) != 1 || dig(filters[0], "patch", "operation") != "INSERT_BEFORE" || dig(filters[0], "match", "context") != "GATEWAY" {
			t.Fatalf("%s: want one filter inserted in the gateway's chain, got %v", name, filters)
		}
		if tc := filters[0]["patch"].(map[string]any)["value"].(map[string]any)["typed_config"].(map[string]any); tc["token_bucket"] != nil {
			t.Errorf("%s: the filter has a bucket of its own, which would limit every host of the gateway", name)
		}
		return dig(filters[0], "patch", "value", "name"), patches
	}
	t.Fatalf("no EnvoyFilter istio-system/%s in:\n%s", name, bundleText(b, nil))
	return "", nil
}

func patchesTo(patches []map[string]any, applyTo string) []map[string]any {
	var out []map[string]any
	for _, p := range patches {
		if p["applyTo"] == applyTo {
			out = append(out, p)
		}
	}
	return out
}

// dig is the string at this path of nested maps, or "".
func dig(m map[string]any, path ...string) string {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[k]
	}
	s, _ := v.(string)
	return s
}

// bucket is the token bucket a host or route patch gives the filter.
func bucket(patch map[string]any, filter string) string {
	cfg, ok := patch["patch"].(map[string]any)["value"].(map[string]any)["typed_per_filter_config"].(map[string]any)[filter].(map[string]any)
	if !ok {
		return "none for " + filter
	}
	tb := cfg["token_bucket"].(map[string]any)
	return fmt.Sprintf("max_tokens=%v tokens_per_fill=%v fill_interval=%v", tb["max_tokens"], tb["tokens_per_fill"], tb["fill_interval"])
}

// envoyRoutes names the routes Envoy gets for host from the owner's bundle and a team's, as
// Istio builds them: each VirtualService route under its name, a delegate route replaced by the
// team's routes named <delegate route>-<team route> (or the delegate route's name when the
// team's has none), each listed by its uri matches.
func envoyRoutes(t *testing.T, owner, team *Bundle, host string) map[string][]string {
	t.Helper()
	vs := func(b *Bundle, name, ns string) []any {
		if b == nil {
			return nil
		}
		for _, o := range b.Objects {
			if o.GetKind() == "VirtualService" && o.GetName() == name && o.GetNamespace() == ns {
				return o.Object["spec"].(map[string]any)["http"].([]any)
			}
		}
		return nil
	}
	uris := func(r map[string]any) []string {
		var out []string
		for _, m := range r["match"].([]any) {
			for k, v := range m.(map[string]any)["uri"].(map[string]any) {
				out = append(out, k+":"+v.(string))
			}
		}
		return out
	}
	out := map[string][]string{}
	root := vs(owner, "ingress-"+slug(host), "edge")
	if root == nil {
		t.Fatalf("no VirtualService for %s in the owner's bundle", host)
	}
	for _, r := range root {
		r := r.(map[string]any)
		name, _ := r["name"].(string)
		del, ok := r["delegate"].(map[string]any)
		if !ok {
			out[name] = append(out[name], uris(r)...)
			continue
		}
		for _, sub := range vs(team, del["name"].(string), del["namespace"].(string)) {
			sub := sub.(map[string]any)
			merged, _ := sub["name"].(string)
			switch {
			case merged == "":
				merged = name
			case name != "":
				merged = name + "-" + merged
			}
			out[merged] = append(out[merged], uris(sub)...)
		}
	}
	return out
}

// rateLimitedDesigns are examples/edge's platform, with the gateway policies of
// gatewayPoliciesDesign, a host limit and a route limit, and its shop team with a limit on its
// claimed route, for an Istio cluster that opts in to EnvoyFilters.
func rateLimitedDesigns(t *testing.T, gatewayNamespace string) (owner, team *schema.Design, c schema.Cluster, files fs.FS) {
	t.Helper()
	owner, c, files = gatewayPoliciesDesign(t, gatewayNamespace)
	vh := owner.Ingress.Hosts["www.example.com"]
	vh.RateLimit = &schema.RateLimit{Requests: 100, Unit: "second", Burst: 50}
	vh.Routes[0].RateLimit = &schema.RateLimit{Requests: 10, Unit: "minute"}
	owner.Ingress.Hosts["www.example.com"] = vh
	c.Istio.EnvoyFilters = true
	_, team, _ = edgeDesign(t, "shop")
	team.Ingress.Claims[0].Routes[0].RateLimit = &schema.RateLimit{Requests: 5, Unit: "hour"}
	return owner, team, c, files
}
