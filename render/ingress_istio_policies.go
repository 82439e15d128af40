package render

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

// istioGatewayPolicies renders what a host asks of the Istio ingress gateway beyond routing,
// a JWT, an authorization server and address rules, as policies in the gateway's namespace (a policy selects workloads
// of its own namespace only): a RequestAuthentication, and DENY AuthorizationPolicies kept to
// the host by its Host header and, where routes differ, to each route's paths.
func istioGatewayPolicies(in *compileInput, hosts []ingressHost, out *output) error {
	gwns := in.cluster.Istio.IngressNamespace
	for _, h := range hosts {
		asks := h.jwt != nil || h.access != nil || h.extAuth != nil
		for _, r := range h.routes {
			asks = asks || r.access != nil
			if !h.owned && r.JWT != nil && !*r.JWT {
				return in.fail(r.src+".jwt", "istio checks tokens by the owner's policy at the gateway, which names the paths it leaves open; a team's route cannot open itself there, so ask the owner of %s to leave the path open", h.host)
			}
			if !h.owned && r.ExtAuth != nil && !*r.ExtAuth {
				return in.fail(r.src+".extAuth", "istio sends requests to the authorization server by the owner's policy at the gateway, which names the paths it leaves unchecked; a team's route cannot leave itself unchecked there, so ask the owner of %s", h.host)
			}
		}
		if !asks {
			continue
		}
		if gwns == "" {
			at := fmt.Sprintf("ingress.hosts.%q.", h.host)
			var what string
			switch {
			case h.jwt != nil:
				at, what = at+"jwt", "require a JWT"
			case h.extAuth != nil:
				at, what = at+"extAuth", "check requests with an authorization server"
			default:
				at, what = at+"access", "admit or refuse clients by address"
				if i := slices.IndexFunc(h.routes, func(r ingressRoute) bool { return r.access != nil }); h.access == nil && i >= 0 {
					at = h.routes[i].src + ".access"
				}
			}
			return in.fail(at, "istio cannot %s here unless the cluster names the ingress gateway's namespace (istio: ingressNamespace), where the policies that select the gateway must live; without them every client would reach the host", what)
		}
		for _, pt := range hosts {
			if pt.passthrough != nil {
				return in.fail(fmt.Sprintf("ingress.hosts.%q.passthrough", pt.host), "istio would refuse this host's connections: the gateway's policies for %s name its HTTPS port, which passthrough shares, and Istio cannot read a path, a token or a forwarded address in a connection it does not open (IST0133); put them on separate clusters, or use the contour provider", h.host)
			}
		}
		selector := map[string]any{"matchLabels": map[string]any{"istio": "ingressgateway"}}
		name := "ingress-" + slug(h.host)
		if !h.owned {
			name += "-" + in.design.Namespace // a team's own policy beside the owner's
		}
		if h.jwt != nil {
			need := []any{map[string]any{"source": map[string]any{"notRequestPrincipals": []any{h.jwt.Issuer + "/*"}}}}
			rules, err := istioGatewayRules(in, h, requiredUnits(h, need, func(r ingressRoute) bool { return r.JWT != nil && !*r.JWT }))
			if err != nil {
				return err
			}
			out.add(newObject("security.istio.io/v1", "RequestAuthentication", gwns, name, map[string]any{
				"selector": selector,
				"jwtRules": []any{istioJWTRule(h.jwt)},
			}))
			out.add(newObject("security.istio.io/v1", "AuthorizationPolicy", gwns, name+"-require-jwt", map[string]any{"selector": selector, "action": "DENY", "rules": rules}))
			out.warn("ingress %s: jwt: istio validates tokens of %s at the gateway for every host it serves (a RequestAuthentication selects workloads, not hosts): another host's client that sends a bad token of this issuer is refused too, and so is every connection another design passes through on port %d", h.host, h.jwt.Issuer, in.cluster.Istio.HTTPSPort())
		}
		if a := h.extAuth; a != nil {
			at := fmt.Sprintf("ingress.hosts.%q.extAuth", h.host)
			switch {
			case a.Provider == "":
				return in.fail(at, "istio checks requests with an extension provider of its meshConfig, by name: say extAuth.provider (one the cluster lists in istio.extAuthProviders), not a Service")
			case !slices.Contains(in.cluster.Istio.ExtAuthProviders, a.Provider):
				return in.fail(at+".provider", "cluster %s lists no Istio extension provider %q (istio: extAuthProviders: the names its meshConfig declares); Istio would refuse every request to a policy naming one it lacks", in.cluster.Name, a.Provider)
			}
			if a.FailOpen || a.Timeout != nil {
				out.warn("ingress %s: extAuth: failOpen and timeout are settings of Istio's extension provider %s in meshConfig; the design's are not rendered", h.host, a.Provider)
			}
			// A CUSTOM rule names no source: every request to its paths is checked.
			rules, err := istioGatewayRules(in, h, requiredUnits(h, []any{}, func(r ingressRoute) bool { return r.ExtAuth != nil && !*r.ExtAuth }))
			if err != nil {
				return err
			}
			out.add(newObject("security.istio.io/v1", "AuthorizationPolicy", gwns, name+"-ext-authz", map[string]any{
				"selector": selector, "action": "CUSTOM", "provider": map[string]any{"name": a.Provider}, "rules": rules,
			}))
		}
		if units := accessUnits(h); units != nil {
			rules, err := istioGatewayRules(in, h, units)
			if err != nil {
				return err
			}
			if len(rules) > 0 {
				out.add(newObject("security.istio.io/v1", "AuthorizationPolicy", gwns, name+"-access", map[string]any{"selector": selector, "action": "DENY", "rules": rules}))
			}
		}
	}
	return nil
}

// gatewayUnit is a path the gateway's policies tell apart: a route, or a delegated prefix
// (whose teams' routes the owner's host-wide requirements reach too). key says what it
// requires, from whom a request is refused ("" and nil: nothing).
type gatewayUnit struct {
	kind  schema.PathKind
	path  string
	key   string
	from  []any
	route *ingressRoute
}

// requiredUnits are the host's paths with what a host-wide requirement (a token, a check by the
// authorization server) asks of them: from, on every route but those exempt and on every
// delegated prefix, whose teams' routes the requirement reaches too.
func requiredUnits(h ingressHost, from []any, exempt func(ingressRoute) bool) []gatewayUnit {
	var units []gatewayUnit
	for i, r := range h.routes {
		u := gatewayUnit{kind: r.kind, path: r.path, key: "required", from: from, route: &h.routes[i]}
		if exempt(r) {
			u.key, u.from = "", nil
		}
		units = append(units, u)
	}
	for _, d := range h.delegate {
		units = append(units, gatewayUnit{kind: schema.PathPrefix, path: d.Prefix, key: "required", from: from})
	}
	return units
}

// accessUnits are the host's paths with the address rule each is held to (a route's own,
// joined with its host's), or nil when none is.
func accessUnits(h ingressHost) []gatewayUnit {
	var units []gatewayUnit
	some := h.access != nil
	for i, r := range h.routes {
		a := r.access
		if a == nil {
			a = h.access
		}
		some = some || a != nil
		units = append(units, gatewayUnit{kind: r.kind, path: r.path, key: accessKey(a), from: accessFrom(a), route: &h.routes[i]})
	}
	if !some {
		return nil
	}
	for _, d := range h.delegate {
		units = append(units, gatewayUnit{kind: schema.PathPrefix, path: d.Prefix, key: accessKey(h.access), from: accessFrom(h.access)})
	}
	return units
}

func accessKey(a *schema.IPAccess) string {
	if a == nil {
		return ""
	}
	return fmt.Sprint(a.Allow, a.Deny, a.Source)
}

// accessFrom is who an address rule refuses: anyone outside an allow list, anyone inside a
// deny list, by the connection's peer or the forwarded client address.
func accessFrom(a *schema.IPAccess) []any {
	if a == nil {
		return nil
	}
	var field string
	blocks, peer := a.Deny, a.Source != "forwarded"
	switch {
	case len(a.Allow) > 0 && peer:
		field, blocks = "notIpBlocks", a.Allow
	case len(a.Allow) > 0:
		field, blocks = "notRemoteIpBlocks", a.Allow
	case peer:
		field = "ipBlocks"
	default:
		field = "remoteIpBlocks"
	}
	return []any{map[string]any{"source": map[string]any{field: stringsAny(blocks)}}}
}

// istioGatewayRules are the DENY rules for a host's units. A host whose owner asks the same
// of every path gets one rule for the host; otherwise each unit that asks something gets a
// rule on its paths, less those of the more specific units within it (where a request goes
// to them instead, and their own rule, if any, decides). HTTP attributes in a DENY rule
// refuse every TCP connection they cannot be read on, unless the rule names the port they
// can (IST0133): each names the gateway's HTTPS port.
func istioGatewayRules(in *compileInput, h ingressHost, units []gatewayUnit) ([]any, error) {
	hosts := []any{h.host, h.host + ":*"}
	ports := []any{strconv.Itoa(in.cluster.Istio.HTTPSPort())}
	uniform := h.owned
	for _, u := range units {
		uniform = uniform && u.key == units[0].key
	}
	if uniform {
		if units[0].from == nil {
			return nil, nil
		}
		return []any{policyRule(units[0].from, map[string]any{"hosts": hosts, "ports": ports})}, nil
	}
	for _, u := range units {
		r := u.route
		switch {
		case r == nil:
		case r.kind == schema.PathRegex:
			return nil, in.fail(r.src+".regex", "istio's authorization policies match paths exactly or by prefix, so the gateway's policy cannot tell this route's paths apart from its neighbours', which ask otherwise; use the contour provider, or exact paths and prefixes")
		case len(r.Headers) > 0 || r.Method != "" || len(r.Query) > 0:
			return nil, in.fail(r.src, "istio's gateway policies tell routes apart by path only, and this host's routes ask different things; a route that matches by headers, method or query cannot be told apart there: use the contour provider, or a path of its own")
		}
	}
	var rules []any
	for _, u := range units {
		if u.from == nil {
			continue
		}
		op := map[string]any{"hosts": hosts, "ports": ports, "paths": stringsAny(unitPaths(u))}
		var skip []string
		for _, o := range units {
			if o.key != u.key && within(o, u) {
				skip = append(skip, unitPaths(o)...)
			}
		}
		if len(skip) > 0 {
			op["notPaths"] = stringsAny(skip)
		}
		rules = append(rules, policyRule(u.from, op))
	}
	return rules, nil
}

// policyRule is one rule of a gateway policy: from whom (none named: anyone), to what.
func policyRule(from []any, op map[string]any) map[string]any {
	rule := map[string]any{"to": []any{map[string]any{"operation": op}}}
	if len(from) > 0 {
		rule["from"] = from
	}
	return rule
}

// unitPaths are a unit's paths as an AuthorizationPolicy writes them: an exact path, or a
// prefix as itself and everything below it.
func unitPaths(u gatewayUnit) []string {
	if u.kind == schema.PathExact {
		return []string{u.path}
	}
	return istioAccessPaths([]string{strings.TrimSuffix(u.path, "/") + "/*"})
}

// within reports whether every request o matches also matches u, and goes to o (the more
// specific of the two): an exact path within a prefix, or a longer prefix within a shorter.
func within(o, u gatewayUnit) bool {
	if u.kind != schema.PathPrefix {
		return false
	}
	base := strings.TrimSuffix(u.path, "/")
	under := u.path == "/" || strings.HasPrefix(o.path, base+"/")
	if o.kind == schema.PathExact {
		return under || o.path == base
	}
	return under && len(strings.TrimSuffix(o.path, "/")) > len(base)
}
