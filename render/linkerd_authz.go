package render

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshcd/meshcd/schema"
)

// linkerdAuthorization renders a service's allow rules as Linkerd policy on its Server. Rules
// that name callers only authorize the Server. When rules also name paths, methods or hosts,
// the service's inbound requests are routed: Linkerd sends each request to its most specific
// matching route, so meshcd renders a match for every combination of the paths, methods and
// hosts the rules name, and authorizes each with exactly the rules every request it gets
// satisfies. Combinations no rule allows get no route (404). Linkerd has no deny rules, so a
// deny rule is an error: leaving it out would widen access.
func linkerdAuthorization(in *compileInput, name string, svc schema.Service, serverName string, objs []*unstructured.Unstructured, out *output) ([]*unstructured.Unstructured, error) {
	ns := in.design.Namespace
	path := "services." + name + ".authorization"
	a := svc.Authorization
	if len(a.Deny) > 0 {
		return nil, in.fail(path+".deny", "linkerd has no deny rules; refusing to render a policy that would let these requests through (list the requests to allow instead)")
	}
	routed := false
	for i, r := range a.Allow {
		rp := fmt.Sprintf("%s.allow[%d]", path, i)
		for j, port := range r.Ports {
			if port != svc.Port {
				return nil, in.fail(fmt.Sprintf("%s.ports[%d]", rp, j), "linkerd authorizes by Server, and meshcd renders one for the service's port %d only; port %d is not covered", svc.Port, port)
			}
		}
		if r.What() && svc.Protocol == "grpc" {
			return nil, in.fail(rp, "linkerd authorizes gRPC methods through GRPCRoutes, which meshcd does not render yet; name callers only on a grpc service")
		}
		routed = routed || r.What()
	}

	targets := make([][]string, len(a.Allow)) // rule → the routes it authorizes
	var routes []string
	if routed {
		for _, rt := range linkerdAuthzRoutes(a.Allow) {
			rn := fmt.Sprintf("%s-authz-%d", name, len(routes))
			routes = append(routes, rn)
			spec := map[string]any{
				"parentRefs": []any{map[string]any{"group": "policy.linkerd.io", "kind": "Server", "name": serverName}},
				"rules":      []any{map[string]any{"matches": rt.matches}},
			}
			if rt.host != "" {
				spec["hostnames"] = []any{rt.host}
			}
			objs = append(objs, newObject("policy.linkerd.io/v1beta3", "HTTPRoute", ns, rn, spec))
			for _, i := range rt.rules {
				targets[i] = append(targets[i], rn)
			}
		}
		out.warn("%s: with path, method or host rules, Linkerd routes the service's inbound requests, stops authorizing the kubelet's probes on its own, and answers 404 to requests no rule allows; allow probe paths explicitly (for example {ipBlocks: [\"10.0.0.0/8\"], paths: [\"/healthz\"]})", path)
	}

	for i, r := range a.Allow {
		authName := fmt.Sprintf("%s-allow-%d", name, i)
		var refs []any
		if ids := linkerdIdentityRefs(r); len(ids) > 0 {
			objs = append(objs, newObject("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", ns, authName, map[string]any{"identityRefs": ids}))
			refs = append(refs, map[string]any{"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": authName})
		}
		if nets := linkerdNetworks(r); len(nets) > 0 {
			objs = append(objs, newObject("policy.linkerd.io/v1alpha1", "NetworkAuthentication", ns, authName, map[string]any{"networks": nets}))
			refs = append(refs, map[string]any{"group": "policy.linkerd.io", "kind": "NetworkAuthentication", "name": authName})
		}
		policy := func(policyName, kind, target string) *unstructured.Unstructured {
			return newObject("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", ns, policyName, map[string]any{
				"targetRef":                  map[string]any{"group": "policy.linkerd.io", "kind": kind, "name": target},
				"requiredAuthenticationRefs": refs,
			})
		}
		if !routed {
			objs = append(objs, policy(authName, "Server", serverName))
			continue
		}
		for _, rn := range targets[i] {
			objs = append(objs, policy(rn+"-allow-"+strconv.Itoa(i), "HTTPRoute", rn))
		}
	}
	return objs, nil
}

// linkerdAuthzRoute is one inbound route: its host (empty: any), its matches, and the rules
// every request it gets satisfies.
type linkerdAuthzRoute struct {
	host    string
	matches []any
	rules   []int
}

// linkerdAuthzRoutes splits the requests rules name into cells, one per path, method and host
// any rule names (plus "any" of each), and groups the cells by host and by the rules that
// hold for every request in them. A request reaches the most specific cell it matches, and a
// rule that matches the request holds for that whole cell, so each route's rules are exactly
// the rules its requests satisfy.
func linkerdAuthzRoutes(rules []schema.AccessRule) []linkerdAuthzRoute {
	paths, methods, hosts := []string{"/*"}, []string{""}, []string{""}
	for _, r := range rules {
		for _, p := range r.Paths {
			if !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
		for _, m := range r.Methods {
			if !slices.Contains(methods, m) {
				methods = append(methods, m)
			}
		}
		for _, h := range r.Hosts {
			if h = strings.ToLower(h); !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	var out []linkerdAuthzRoute
	for _, h := range hosts {
		for _, p := range paths {
			for _, m := range methods {
				var holds []int
				for i, r := range rules {
					if linkerdRuleHolds(r, p, m, h) {
						holds = append(holds, i)
					}
				}
				if len(holds) == 0 {
					continue
				}
				base, prefix := schema.AccessPath(p)
				pm := map[string]any{"type": "Exact", "value": base}
				if prefix {
					pm["type"] = "PathPrefix"
				}
				match := map[string]any{"path": pm}
				if m != "" {
					match["method"] = m
				}
				k := slices.IndexFunc(out, func(o linkerdAuthzRoute) bool { return o.host == h && slices.Equal(o.rules, holds) })
				if k < 0 {
					k = len(out)
					out = append(out, linkerdAuthzRoute{host: h, rules: holds})
				}
				out[k].matches = append(out[k].matches, match)
			}
		}
	}
	return out
}

// linkerdRuleHolds reports whether every request with path p, method m and host h ("": any)
// satisfies the rule's conditions.
func linkerdRuleHolds(r schema.AccessRule, p, m, h string) bool {
	if len(r.Methods) > 0 && !slices.Contains(r.Methods, m) {
		return false
	}
	if len(r.Hosts) > 0 && !slices.ContainsFunc(r.Hosts, func(x string) bool { return strings.EqualFold(x, h) }) {
		return false
	}
	return len(r.Paths) == 0 || slices.ContainsFunc(r.Paths, func(rp string) bool { return schema.AccessPathWithin(p, rp) })
}

// linkerdIdentityRefs are a rule's callers by mesh identity.
func linkerdIdentityRefs(r schema.AccessRule) []any {
	var refs []any
	for _, sa := range r.ServiceAccounts {
		saNS, saName, _ := strings.Cut(sa, "/")
		refs = append(refs, map[string]any{"kind": "ServiceAccount", "name": saName, "namespace": saNS})
	}
	for _, n := range r.Namespaces {
		refs = append(refs, map[string]any{"kind": "Namespace", "name": n})
	}
	return refs
}

// linkerdNetworks are a rule's callers by address; a rule that names no callers admits every
// address, meshed or not.
func linkerdNetworks(r schema.AccessRule) []any {
	blocks := r.IPBlocks
	if !r.Who() {
		blocks = []string{"0.0.0.0/0", "::/0"}
	}
	var nets []any
	for _, b := range blocks {
		p, err := schema.ParseIPBlock(b)
		if err != nil {
			continue // refused by validation
		}
		nets = append(nets, map[string]any{"cidr": p.String()})
	}
	return nets
}
