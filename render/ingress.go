package render

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

// ingressGateway is the name of the Istio Gateway a design that owns hosts renders; claims in
// other namespaces attach to it by namespace/name. Gateway API Gateways are named by gatewayName.
const ingressGateway = "ingress"

// ingressRoute is one route as a provider renders it: its full path prefix on the host and
// what it sends where.
type ingressRoute struct {
	// kind and path are how and what the route matches, in full: a claim's prefix included.
	kind schema.PathKind
	path string
	// delegateTo is the namespace a delegated prefix goes to, for a provider that lists
	// delegations among the owner's routes (istio).
	delegateTo string
	// src is where the design says it, for errors: ingress.hosts.<host>.routes[i] or
	// ingress.claims[i].routes[j].
	src string
	// access is the address rule the route itself carries: its own, held to its host's too.
	access *schema.IPAccess
	schema.IngressRoute
}

// ingressHost is everything one design renders for one host: the host it owns, or its claim on
// another design's host.
type ingressHost struct {
	host    string
	owned   bool
	owner   string // namespace of the owning design (claims)
	tls     *schema.TLSRef
	cors    *schema.CORS
	limit   *schema.RateLimit
	jwt     *schema.JWT
	access  *schema.IPAccess
	extAuth *schema.ExtAuth
	// passthrough are where the host's TLS connections go unopened (nil: the host is HTTP).
	passthrough []schema.IngressBackend
	delegate    []schema.Delegation
	routes      []ingressRoute
}

func designHosts(in *schema.Ingress) []ingressHost {
	var out []ingressHost
	for _, host := range slices.Sorted(maps.Keys(in.Hosts)) {
		vh := in.Hosts[host]
		h := ingressHost{host: host, owned: true, tls: vh.TLS, cors: vh.CORS, limit: vh.RateLimit, jwt: vh.JWT, access: vh.Access, extAuth: vh.ExtAuth, delegate: vh.Delegate}
		if vh.Passthrough != nil {
			h.passthrough = vh.Passthrough.Backends
		}
		for i, r := range vh.Routes {
			access, _ := schema.CombineIPAccess(vh.Access, r.Access) // validation refuses what cannot combine
			kind, path := r.PathMatch()
			h.routes = append(h.routes, ingressRoute{kind: kind, path: path, src: fmt.Sprintf("ingress.hosts.%q.routes[%d]", host, i), access: access, IngressRoute: r})
		}
		out = append(out, h)
	}
	for ci, c := range in.Claims {
		h := ingressHost{host: c.Host, owner: c.Owner}
		for i, r := range c.Routes {
			kind, path := r.PathMatch()
			switch base := strings.TrimSuffix(c.Prefix, "/"); kind {
			case schema.PathExact:
				path = base + path
			case schema.PathRegex:
				// As Contour joins an include's prefix to a regex: the group keeps an
				// alternation inside the claim.
				path = regexp.QuoteMeta(base) + "(?:" + path + ")"
			default:
				path = joinPrefix(c.Prefix, path)
			}
			h.routes = append(h.routes, ingressRoute{kind: kind, path: path, src: fmt.Sprintf("ingress.claims[%d].routes[%d]", ci, i), access: r.Access, IngressRoute: r})
		}
		out = append(out, h)
	}
	return out
}

// byPrecedence orders a host's routes the way every provider tries them (Istio tries them in
// the order given): exact paths, then regular expressions, then prefixes, each longest first;
// between routes of one path, the one with a method, then more headers, then more query
// parameters first, as Gateway API orders them.
func byPrecedence(routes []ingressRoute) []ingressRoute {
	out := slices.Clone(routes)
	slices.SortStableFunc(out, func(a, b ingressRoute) int {
		return cmp.Or(
			cmp.Compare(pathRank[a.kind], pathRank[b.kind]),
			-cmp.Compare(len(a.path), len(b.path)),
			-cmp.Compare(len(a.Method), len(b.Method)),
			-cmp.Compare(len(a.Headers), len(b.Headers)),
			-cmp.Compare(len(a.Query), len(b.Query)))
	})
	return out
}

// pathRank is the order providers try path matches in.
var pathRank = map[schema.PathKind]int{schema.PathExact: 0, schema.PathRegex: 1, schema.PathPrefix: 2}

func joinPrefix(base, p string) string {
	if p == "/" || p == "" {
		return base
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(p, "/")
}

// slug turns a host into a name usable for Kubernetes objects.
func slug(host string) string {
	s := strings.ReplaceAll(strings.ReplaceAll(host, "*.", "wildcard-"), ".", "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

// backendService names the Service a backend reaches: the version's own Service, the whole
// service, or the ExternalName Service standing for an external upstream.
func backendService(b schema.IngressBackend) string {
	switch {
	case b.External != nil:
		return "ext-" + slug(b.External.Host)
	case b.Version != "":
		return b.Service + "-" + b.Version
	}
	return b.Service
}

func backendPort(in *compileInput, b schema.IngressBackend) int64 {
	if b.External != nil {
		return int64(b.External.Port)
	}
	return int64(in.services[b.Service].Port)
}

// compileIngress renders the design's ingress for the cluster's ingress provider.
func compileIngress(in *compileInput, out *output) error {
	ing := in.design.Ingress
	if ing == nil {
		return nil
	}
	if in.cluster.Ingress == "" {
		out.warn("ingress: cluster %s names no ingress provider; the ingress section is not rendered there", in.cluster.Name)
		return nil
	}
	hosts := designHosts(ing)
	ingressSupportServices(in, hosts, out)
	switch in.cluster.Ingress {
	case "contour":
		return compileContour(in, ing, hosts, out)
	case "gateway-api":
		return compileGatewayIngress(in, ing, hosts, out)
	case "istio":
		return compileIstioIngress(in, hosts, out)
	}
	return in.fail("", "unknown ingress provider %q", in.cluster.Ingress)
}

// ingressSupportServices adds what ingress backends point at and no one else renders: a
// Service per version routed to (the mesh compilers of linkerd and gateway-api make them too),
// and an ExternalName Service per external upstream.
func ingressSupportServices(in *compileInput, hosts []ingressHost, out *output) {
	have := map[string]bool{}
	for _, o := range out.objects {
		if o.GetKind() == "Service" {
			have[o.GetName()] = true
		}
	}
	ns := in.design.Namespace
	for _, h := range hosts {
		backends := slices.Clone(h.passthrough)
		for _, r := range h.routes {
			backends = append(backends, r.Backends...)
		}
		for _, b := range backends {
			name := backendService(b)
			if have[name] {
				continue
			}
			switch {
			case b.External != nil:
				portName := "http"
				if b.External.TLS {
					portName = "https"
				}
				out.add(newObject("v1", "Service", ns, name, map[string]any{
					"type":         "ExternalName",
					"externalName": b.External.Host,
					"ports":        []any{map[string]any{"name": portName, "port": int64(b.External.Port), "protocol": "TCP"}},
				}))
				have[name] = true
			case b.Version != "":
				svc := in.services[b.Service]
				for _, s := range versionServices(ns, b.Service, schema.Service{Port: svc.Port, Protocol: svc.Protocol,
					Versions: map[string]schema.Version{b.Version: svc.Versions[b.Version]}}, nil) {
					out.add(s)
				}
				have[name] = true
			}
		}
	}
}

func headerSets(h *schema.HeaderPolicy) []any {
	var out []any
	for _, k := range slices.Sorted(maps.Keys(h.Set)) {
		out = append(out, map[string]any{"name": k, "value": h.Set[k]})
	}
	return out
}

func stringsAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// externalUpstreams are the external upstreams the hosts' routes reach, by host name.
func externalUpstreams(hosts []ingressHost) map[string]schema.External {
	out := map[string]schema.External{}
	for _, h := range hosts {
		for _, r := range h.routes {
			for _, b := range r.Backends {
				if b.External != nil {
					out[b.External.Host] = *b.External
				}
			}
		}
	}
	return out
}

// externalHost is the upstream host of a route with an external backend, whose Host header the
// proxy rewrites to it.
func externalHost(r ingressRoute) string {
	for _, b := range r.Backends {
		if b.External != nil {
			return b.External.Host
		}
	}
	return ""
}

// upstreamHost is the Host header a route sends upstream when it sets one: an external
// backend's host, or the route's rewrite.host (the rules allow only one of them).
func upstreamHost(r ingressRoute) string {
	if ext := externalHost(r); ext != "" {
		return ext
	}
	if r.Rewrite != nil {
		return r.Rewrite.Host
	}
	return ""
}

// rewritePrefix is the prefix that replaces the one the route matched, or "".
func rewritePrefix(r ingressRoute) string {
	if r.Rewrite == nil {
		return ""
	}
	return r.Rewrite.Prefix
}

// corsFields are a CORS policy's lists and flag, under each provider's names for the origins;
// maxAge is added by each provider its own way.
func corsFields(c *schema.CORS, origins string, origin func(string) any) map[string]any {
	m := map[string]any{"allowMethods": stringsAny(c.AllowMethods), "allowCredentials": c.AllowCredentials}
	var os []any
	for _, o := range c.AllowOrigins {
		os = append(os, origin(o))
	}
	m[origins] = os
	if len(c.AllowHeaders) > 0 {
		m["allowHeaders"] = stringsAny(c.AllowHeaders)
	}
	if len(c.ExposeHeaders) > 0 {
		m["exposeHeaders"] = stringsAny(c.ExposeHeaders)
	}
	return m
}

// warnCORSPerRoute says, for providers that set CORS per route, that the claims under a
// host's delegated prefixes do not get the owner's policy (their answers lack the CORS
// headers, so browsers refuse them: it fails closed).
func warnCORSPerRoute(h ingressHost, provider string, out *output) {
	if h.cors == nil || len(h.delegate) == 0 {
		return
	}
	out.warn("ingress %s: cors: %s sets CORS per route, so the routes claimed under %s do not get it (browsers refuse their cross-origin answers); Contour applies it to the whole host", h.host, provider, delegatedPrefixes(h))
}

// delegatedPrefixes lists the prefixes a host delegates, for messages.
func delegatedPrefixes(h ingressHost) string {
	var ps []string
	for _, d := range h.delegate {
		ps = append(ps, d.Prefix)
	}
	return strings.Join(ps, ", ")
}

// redirect renders a redirect with each provider's field names for the status, the host and the
// path (and its way of saying a path).
func redirect(r *schema.Redirect, statusKey, hostKey, pathKey string, path func(string) any) map[string]any {
	rd := map[string]any{statusKey: int64(r.Status)}
	if r.Scheme != "" {
		rd["scheme"] = r.Scheme
	}
	if r.Host != "" {
		rd[hostKey] = r.Host
	}
	if r.Port != 0 {
		rd["port"] = int64(r.Port)
	}
	if r.Path != "" {
		rd[pathKey] = path(r.Path)
	}
	return rd
}

// refuseRateLimits is the error of a provider with no local rate limit: leaving one out would
// let through traffic the design caps.
func refuseRateLimits(in *compileInput, hosts []ingressHost, provider, why string) error {
	for _, h := range hosts {
		if h.limit != nil {
			return in.fail(fmt.Sprintf("ingress.hosts.%q.rateLimit", h.host), "%s has no local rate limit (%s); without one the host would take every request", provider, why)
		}
		for _, r := range h.routes {
			if r.RateLimit != nil {
				return in.fail(r.src+".rateLimit", "%s has no local rate limit (%s); without one the route would take every request", provider, why)
			}
		}
	}
	return nil
}

// contourRateLimit is Contour's local rate limit policy.
func contourRateLimit(l *schema.RateLimit) map[string]any {
	local := map[string]any{"requests": int64(l.Requests), "unit": l.Unit}
	if l.Burst > 0 {
		local["burst"] = int64(l.Burst)
	}
	return map[string]any{"local": local}
}

// refuseJWT is the error of a provider that cannot check tokens: leaving the check out would
// open the host to anyone.
func refuseJWT(in *compileInput, hosts []ingressHost, provider, why string) error {
	for _, h := range hosts {
		if h.jwt != nil {
			return in.fail(fmt.Sprintf("ingress.hosts.%q.jwt", h.host), "%s cannot require a JWT here (%s); without it the host would be open to anyone", provider, why)
		}
	}
	return nil
}

// refuseIPAccess is the error of a provider that cannot admit or refuse clients by address:
// leaving the rule out would let every address in.
func refuseIPAccess(in *compileInput, hosts []ingressHost, provider, why string) error {
	for _, h := range hosts {
		if h.access != nil {
			return in.fail(fmt.Sprintf("ingress.hosts.%q.access", h.host), "%s cannot admit or refuse clients by address here (%s); without it every address would reach the host", provider, why)
		}
		for _, r := range h.routes {
			if r.Access != nil {
				return in.fail(r.src+".access", "%s cannot admit or refuse clients by address here (%s); without it every address would reach the route", provider, why)
			}
		}
	}
	return nil
}

// contourIPFilters sets Contour's ipAllowPolicy or ipDenyPolicy on a virtual host or a route.
func contourIPFilters(into map[string]any, a *schema.IPAccess) {
	if a == nil {
		return
	}
	source := map[string]string{"peer": "Peer", "forwarded": "Remote"}[a.Source]
	key, blocks := "ipAllowPolicy", a.Allow
	if len(a.Deny) > 0 {
		key, blocks = "ipDenyPolicy", a.Deny
	}
	var rules []any
	for _, b := range blocks {
		p, err := schema.ParseIPBlock(b)
		if err != nil {
			continue // refused by validation
		}
		rules = append(rules, map[string]any{"source": source, "cidr": p.String()})
	}
	into[key] = rules
}

// warnEdgeResilience names the route settings a provider leaves to its defaults: a per-route
// idle timeout and active health checks (passive checks and the Endpoints' readiness still
// apply, so leaving them out is safe).
func warnEdgeResilience(hosts []ingressHost, provider string, out *output) {
	for _, h := range hosts {
		for _, r := range h.routes {
			if r.IdleTimeout != nil {
				out.warn("ingress %s%s: idleTimeout: %s has no per-route idle timeout; the proxy's default applies", h.host, r.path, provider)
			}
			if r.HealthCheck != nil {
				out.warn("ingress %s%s: healthCheck: %s has no active health checks at the edge; endpoints get traffic while Kubernetes counts them ready", h.host, r.path, provider)
			}
		}
	}
}

// passthroughServices are a passthrough host's backends as the Services they reach, with
// their ports and weights.
func passthroughServices(in *compileInput, h ingressHost) []map[string]any {
	var out []map[string]any
	for _, b := range h.passthrough {
		out = append(out, map[string]any{"name": backendService(b), "port": backendPort(in, b), "weight": int64(b.Weight)})
	}
	return out
}
