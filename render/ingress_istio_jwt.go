package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

// istioIngressJWT renders the JWT a host requires for the Istio ingress gateway: a
// RequestAuthentication and a DENY AuthorizationPolicy for requests without a token of the
// issuer, both in the gateway's namespace (a policy selects workloads of its own namespace
// only), the policy kept to the host by its Host header and, where some routes stay open, to
// the routes that require a token by their paths.
func istioIngressJWT(in *compileInput, hosts []ingressHost, out *output) error {
	gwns := in.cluster.Istio.IngressNamespace
	for _, h := range hosts {
		if !h.owned {
			for _, r := range h.routes {
				if r.JWT != nil && !*r.JWT {
					return in.fail(r.src+".jwt", "istio checks tokens by the owner's policy at the gateway, which names the paths it leaves open; a team's route cannot open itself there, so ask the owner of %s to leave the path open", h.host)
				}
			}
			continue
		}
		if h.jwt == nil {
			continue
		}
		at := fmt.Sprintf("ingress.hosts.%q.jwt", h.host)
		if gwns == "" {
			return in.fail(at, "istio cannot require a JWT here unless the cluster names the ingress gateway's namespace (istio: ingressNamespace), where its RequestAuthentication and AuthorizationPolicy must live; without them the host would be open to anyone")
		}
		for _, pt := range hosts {
			if pt.passthrough != nil {
				return in.fail(fmt.Sprintf("ingress.hosts.%q.passthrough", pt.host), "istio would refuse this host's connections: the gateway's token policy for %s names its HTTPS port, which passthrough shares, and Istio cannot read a path or a token in a connection it does not open (IST0133); put them on separate clusters, or use the contour provider", h.host)
			}
		}
		rules, err := istioIngressJWTRules(in, h)
		if err != nil {
			return err
		}
		selector := map[string]any{"matchLabels": map[string]any{"istio": "ingressgateway"}}
		out.add(newObject("security.istio.io/v1", "RequestAuthentication", gwns, "ingress-"+slug(h.host), map[string]any{
			"selector": selector,
			"jwtRules": []any{istioJWTRule(h.jwt)},
		}))
		out.add(newObject("security.istio.io/v1", "AuthorizationPolicy", gwns, "ingress-"+slug(h.host)+"-require-jwt", map[string]any{
			"selector": selector,
			"action":   "DENY",
			"rules":    rules,
		}))
		out.warn("ingress %s: jwt: istio validates tokens of %s at the gateway for every host it serves (a RequestAuthentication selects workloads, not hosts): another host's client that sends a bad token of this issuer is refused too, and so is every connection another design passes through on port %d", h.host, h.jwt.Issuer, in.cluster.Istio.HTTPSPort())
	}
	return nil
}

// jwtUnit is a path the host's policy tells apart: a route of the owner's, or a delegated
// prefix (whose teams' routes require the token too).
type jwtUnit struct {
	kind schema.PathKind
	path string
	open bool
}

// istioIngressJWTRules are the DENY rules for requests to the host without a token of its
// issuer. With every route requiring one, one rule covers the host; otherwise each route that
// requires one gets a rule on its paths, less the paths of the open routes more specific than
// it (where a request goes to them instead).
func istioIngressJWTRules(in *compileInput, h ingressHost) ([]any, error) {
	from := []any{map[string]any{"source": map[string]any{"notRequestPrincipals": []any{h.jwt.Issuer + "/*"}}}}
	hosts := []any{h.host, h.host + ":*"}
	// HTTP attributes in a DENY rule deny every TCP connection they cannot be read on, unless
	// the rule names the port they can (IST0133).
	ports := []any{strconv.Itoa(in.cluster.Istio.HTTPSPort())}
	var units []jwtUnit
	anyOpen := false
	for _, r := range h.routes {
		open := r.JWT != nil && !*r.JWT
		anyOpen = anyOpen || open
		units = append(units, jwtUnit{r.kind, r.path, open})
	}
	if !anyOpen {
		return []any{map[string]any{"from": from, "to": []any{map[string]any{"operation": map[string]any{"hosts": hosts, "ports": ports}}}}}, nil
	}
	for _, r := range h.routes {
		switch {
		case r.kind == schema.PathRegex:
			return nil, in.fail(r.src+".regex", "istio's authorization policies match paths exactly or by prefix, so the gateway's token check cannot tell this route's paths apart from the open ones; use the contour provider, or exact paths and prefixes")
		case len(r.Headers) > 0 || r.Method != "" || len(r.Query) > 0:
			return nil, in.fail(r.src, "istio's gateway token check tells routes apart by path only, and this host leaves some open; a route that matches by headers, method or query cannot be told apart there: use the contour provider, or a path of its own")
		}
	}
	for _, d := range h.delegate {
		units = append(units, jwtUnit{schema.PathPrefix, d.Prefix, false})
	}
	var rules []any
	for _, u := range units {
		if u.open {
			continue
		}
		op := map[string]any{"hosts": hosts, "ports": ports, "paths": stringsAny(jwtPaths(u))}
		var skip []string
		for _, o := range units {
			if o.open && jwtWithin(o, u) {
				skip = append(skip, jwtPaths(o)...)
			}
		}
		if len(skip) > 0 {
			op["notPaths"] = stringsAny(skip)
		}
		rules = append(rules, map[string]any{"from": from, "to": []any{map[string]any{"operation": op}}})
	}
	return rules, nil
}

// jwtPaths are a unit's paths as an AuthorizationPolicy writes them: an exact path, or a
// prefix as itself and everything below it.
func jwtPaths(u jwtUnit) []string {
	switch {
	case u.kind == schema.PathExact:
		return []string{u.path}
	case u.path == "/":
		return []string{"/*"}
	}
	base := strings.TrimSuffix(u.path, "/")
	return []string{base, base + "/*"}
}

// jwtWithin reports whether every request o matches also matches u, and goes to o (the more
// specific of the two): an exact path within a prefix, or a longer prefix within a shorter.
func jwtWithin(o, u jwtUnit) bool {
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
