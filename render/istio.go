package render

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

// compileIstio renders each service to a VirtualService (routes, weights, retries, timeouts,
// faults), a DestinationRule (subsets, connection pool, outlier detection, TLS), and where the
// design asks, a PeerAuthentication and an AuthorizationPolicy.
func compileIstio(in *compileInput, out *output) error {
	ns := in.design.Namespace
	for _, name := range slices.Sorted(maps.Keys(in.services)) {
		svc := in.services[name]
		h := host(name, ns)
		if len(svc.Routes) > 0 {
			out.add(newObject("networking.istio.io/v1", "VirtualService", ns, name, map[string]any{
				"hosts":        []any{h},
				routesKey(svc): istioRoutes(name, h, svc),
			}))
		}
		out.add(newObject("networking.istio.io/v1", "DestinationRule", ns, name, istioDestinationRule(name, h, svc)))
		if svc.MTLS != "" {
			out.add(newObject("security.istio.io/v1", "PeerAuthentication", ns, name, map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
				"mtls":     map[string]any{"mode": istioMTLSMode(svc.MTLS)},
			}))
		}
		if j := svc.JWT; j != nil {
			rule := istioJWTRule(j)
			out.add(newObject("security.istio.io/v1", "RequestAuthentication", ns, name, map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
				"jwtRules": []any{rule},
			}))
			// A RequestAuthentication only refuses bad tokens; a request without one is refused
			// by this policy. The port keeps it to the service's HTTP (IST0133).
			out.add(newObject("security.istio.io/v1", "AuthorizationPolicy", ns, name+"-require-jwt", map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
				"action":   "DENY",
				"rules": []any{map[string]any{
					"from": []any{map[string]any{"source": map[string]any{"notRequestPrincipals": []any{"*"}}}},
					"to":   []any{map[string]any{"operation": map[string]any{"ports": []any{strconv.Itoa(svc.Port)}}}},
				}},
			}))
		}
		if l := svc.RateLimit; l != nil {
			if !in.cluster.Istio.EnvoyFilters {
				return in.fail("services."+name+".rateLimit", "istio has no local rate limit for a service but an EnvoyFilter, which meshcd writes only where the cluster opts in (istio: envoyFilters: true; an Istio upgrade may break it); without one the service would take every request")
			}
			out.add(newObject("networking.istio.io/v1alpha3", "EnvoyFilter", ns, name+"-ratelimit", istioRateLimitFilter(name, svc.Port, l)))
		}
		if ea := svc.ExtAuth; ea != nil {
			if !slices.Contains(in.cluster.Istio.ExtAuthProviders, ea.Provider) {
				return in.fail("services."+name+".extAuth.provider", "cluster %s lists no Istio extension provider %q (istio: extAuthProviders: the names its meshConfig declares); Istio would refuse every request to a policy naming one it lacks", in.cluster.Name, ea.Provider)
			}
			out.add(newObject("security.istio.io/v1", "AuthorizationPolicy", ns, name+"-ext-authz", istioExtAuthz(name, svc.Port, ea)))
		}
		if a := svc.Authorization; a != nil {
			if !a.AllowsAll() {
				out.add(newObject("security.istio.io/v1", "AuthorizationPolicy", ns, name, istioAuthorization(name, "ALLOW", a.Allow, svc.Port)))
			}
			if len(a.Deny) > 0 {
				out.add(newObject("security.istio.io/v1", "AuthorizationPolicy", ns, name+"-deny", istioAuthorization(name, "DENY", a.Deny, svc.Port)))
			}
		}
	}
	return nil
}

func routesKey(svc schema.Service) string {
	if svc.Protocol == "tcp" {
		return "tcp"
	}
	return "http"
}

func istioRoutes(name, h string, svc schema.Service) []any {
	routes := make([]any, 0, len(svc.Routes))
	for i, r := range svc.Routes {
		route := map[string]any{}
		var dests []any
		for _, v := range slices.Sorted(maps.Keys(r.To)) {
			dests = append(dests, map[string]any{
				"destination": map[string]any{"host": h, "subset": v, "port": map[string]any{"number": int64(svc.Port)}},
				"weight":      int64(r.To[v]),
			})
		}
		route["route"] = dests
		if svc.Protocol == "tcp" {
			routes = append(routes, route) // Istio's TCP routes carry no name
			continue
		}
		route["name"] = routeName(name, i, r)
		if r.Match != nil {
			route["match"] = []any{istioMatch(r.Match)}
		}
		if m := r.Mirror; m != nil {
			route["mirror"] = map[string]any{"host": h, "subset": m.Version, "port": map[string]any{"number": int64(svc.Port)}}
			route["mirrorPercentage"] = map[string]any{"value": jsonNumber(m.Percent)}
		}
		timeout := r.Timeout
		if timeout == nil {
			timeout = svc.Timeout
		}
		if timeout != nil {
			route["timeout"] = timeout.Text
		}
		retries := r.Retries
		if retries == nil {
			retries = svc.Retries
		}
		if retries != nil {
			rr := map[string]any{"attempts": int64(retries.Attempts)}
			if retries.PerTryTimeout != nil {
				rr["perTryTimeout"] = retries.PerTryTimeout.Text
			}
			istioRetryPolicy(retries, rr)
			route["retries"] = rr
		}
		if r.Fault != nil {
			route["fault"] = istioFault(r.Fault)
		}
		routes = append(routes, route)
	}
	return routes
}

func istioMatch(m *schema.Match) map[string]any {
	out := map[string]any{}
	if m.Path != nil {
		out["uri"] = istioStringMatch(*m.Path)
	}
	if len(m.Headers) > 0 {
		h := map[string]any{}
		for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
			h[strings.ToLower(k)] = istioStringMatch(m.Headers[k])
		}
		out["headers"] = h
	}
	if m.Method != "" {
		out["method"] = map[string]any{"exact": m.Method}
	}
	return out
}

func istioStringMatch(s schema.StringMatch) map[string]any {
	switch {
	case s.Exact != nil:
		return map[string]any{"exact": *s.Exact}
	case s.Prefix != nil:
		return map[string]any{"prefix": *s.Prefix}
	default:
		return map[string]any{"regex": *s.Regex}
	}
}

func istioFault(f *schema.Fault) map[string]any {
	out := map[string]any{}
	if f.Delay != nil {
		out["delay"] = map[string]any{"fixedDelay": f.Delay.Fixed.Text, "percentage": map[string]any{"value": f.Delay.Percent}}
	}
	if f.Abort != nil {
		out["abort"] = map[string]any{"httpStatus": int64(f.Abort.Status), "percentage": map[string]any{"value": f.Abort.Percent}}
	}
	return out
}

func istioDestinationRule(name, h string, svc schema.Service) map[string]any {
	spec := map[string]any{"host": h}
	var subsets []any
	for _, v := range slices.Sorted(maps.Keys(svc.Versions)) {
		labels := map[string]any{}
		for k, val := range svc.Versions[v].Labels {
			labels[k] = val
		}
		subsets = append(subsets, map[string]any{"name": v, "labels": labels})
	}
	if len(subsets) > 0 {
		spec["subsets"] = subsets
	}
	policy := map[string]any{}
	if p := svc.ConnectionPool; p != nil {
		pool := map[string]any{}
		tcp := map[string]any{}
		if p.MaxConnections > 0 {
			tcp["maxConnections"] = int64(p.MaxConnections)
		}
		if p.ConnectTimeout != nil {
			tcp["connectTimeout"] = p.ConnectTimeout.Text
		}
		if len(tcp) > 0 {
			pool["tcp"] = tcp
		}
		httpPool := map[string]any{}
		if p.IdleTimeout != nil {
			httpPool["idleTimeout"] = p.IdleTimeout.Text
		}
		if p.MaxPendingRequests > 0 {
			httpPool["http1MaxPendingRequests"] = int64(p.MaxPendingRequests)
		}
		if p.MaxRequestsPerConnection > 0 {
			httpPool["maxRequestsPerConnection"] = int64(p.MaxRequestsPerConnection)
		}
		if len(httpPool) > 0 {
			pool["http"] = httpPool
		}
		if len(pool) > 0 {
			policy["connectionPool"] = pool
		}
	}
	if lb := svc.LoadBalancer; lb != nil {
		policy["loadBalancer"] = istioLoadBalancer(lb)
	}
	if o := svc.OutlierDetection; o != nil {
		policy["outlierDetection"] = map[string]any{
			"consecutive5xxErrors": int64(o.Consecutive5xxErrors),
			"interval":             o.Interval.Text,
			"baseEjectionTime":     o.BaseEjectionTime.Text,
			"maxEjectionPercent":   int64(o.MaxEjectionPercent),
		}
		if o.ConsecutiveGatewayErrors > 0 {
			policy["outlierDetection"].(map[string]any)["consecutiveGatewayErrors"] = int64(o.ConsecutiveGatewayErrors)
		}
	}
	switch svc.MTLS {
	case "strict", "permissive":
		policy["tls"] = map[string]any{"mode": "ISTIO_MUTUAL"}
	case "disabled":
		policy["tls"] = map[string]any{"mode": "DISABLE"}
	}
	if len(policy) > 0 {
		spec["trafficPolicy"] = policy
	}
	return spec
}

func istioMTLSMode(mode string) string {
	switch mode {
	case "strict":
		return "STRICT"
	case "permissive":
		return "PERMISSIVE"
	}
	return "DISABLE"
}

// istioExtAuthz is a CUSTOM AuthorizationPolicy that sends the service's requests, on its
// port and but for the skipped paths, to the extension provider for a verdict.
func istioExtAuthz(name string, port int, ea *schema.MeshExtAuth) map[string]any {
	op := map[string]any{"ports": []any{strconv.Itoa(port)}}
	setStrings(op, "notPaths", istioAccessPaths(ea.SkipPaths))
	return map[string]any{
		"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
		"action":   "CUSTOM",
		"provider": map[string]any{"name": ea.Provider},
		"rules":    []any{map[string]any{"to": []any{map[string]any{"operation": op}}}},
	}
}

// istioAuthorization is an AuthorizationPolicy with one Istio rule per access rule: who in
// from, what in to. An ALLOW policy without rules refuses everyone. A DENY rule on paths,
// methods or hosts names the service's port unless it names ports itself: Istio cannot read
// HTTP attributes of other ports' TCP traffic, and would deny all of it.
func istioAuthorization(name, action string, rules []schema.AccessRule, port int) map[string]any {
	spec := map[string]any{
		"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
		"action":   action,
	}
	var out []any
	for _, r := range rules {
		rule := map[string]any{}
		src := map[string]any{}
		if len(r.ServiceAccounts) > 0 {
			var ps []any
			for _, sa := range r.ServiceAccounts {
				ps = append(ps, principal(sa))
			}
			src["principals"] = ps
		}
		setStrings(src, "namespaces", r.Namespaces)
		setStrings(src, "ipBlocks", r.IPBlocks)
		if len(src) > 0 {
			rule["from"] = []any{map[string]any{"source": src}}
		}
		op := map[string]any{}
		setStrings(op, "paths", istioAccessPaths(r.Paths))
		setStrings(op, "methods", r.Methods)
		setStrings(op, "hosts", r.Hosts)
		var ports []string
		if action == "DENY" && r.What() && len(r.Ports) == 0 {
			ports = append(ports, strconv.Itoa(port))
		}
		for _, p := range r.Ports {
			ports = append(ports, strconv.Itoa(p))
		}
		setStrings(op, "ports", ports)
		if len(op) > 0 {
			rule["to"] = []any{map[string]any{"operation": op}}
		}
		out = append(out, rule)
	}
	if len(out) > 0 {
		spec["rules"] = out
	}
	return spec
}

func setStrings(m map[string]any, key string, values []string) {
	if len(values) == 0 {
		return
	}
	l := make([]any, len(values))
	for i, v := range values {
		l[i] = v
	}
	m[key] = l
}

// istioLoadBalancer is a DestinationRule's loadBalancer: a simple algorithm or a consistent
// hash.
func istioLoadBalancer(lb *schema.LoadBalancer) map[string]any {
	if lb.Hash == nil {
		return map[string]any{"simple": map[string]string{"round-robin": "ROUND_ROBIN", "least-request": "LEAST_REQUEST", "random": "RANDOM"}[lb.Algorithm]}
	}
	hash := map[string]any{}
	switch h := lb.Hash; {
	case h.Header != "":
		hash["httpHeaderName"] = h.Header
	case h.Cookie != nil:
		c := map[string]any{"name": h.Cookie.Name}
		if h.Cookie.TTL != nil {
			c["ttl"] = h.Cookie.TTL.Text
		}
		hash["httpCookie"] = c
	default:
		hash["useSourceIp"] = true
	}
	return map[string]any{"consistentHash": hash}
}

// istioRetryPolicy adds what a retry policy says besides attempts and the per-try timeout:
// retryOn with the conditions and the status codes (Istio reads numbers there as retriable
// status codes), and the backoff.
func istioRetryPolicy(r *schema.Retries, rr map[string]any) {
	if on := append(slices.Clone(r.On), r.CodeList()...); len(on) > 0 {
		rr["retryOn"] = strings.Join(on, ",")
	}
	if r.Backoff != nil {
		rr["backoff"] = r.Backoff.Text
	}
}

// istioRateLimitFilter is an EnvoyFilter that puts Envoy's local rate limit in front of the
// service's port on its own sidecars (localRateLimit: requests per unit, burst above them).
// Each replica counts for itself.
func istioRateLimitFilter(name string, port int, l *schema.RateLimit) map[string]any {
	return map[string]any{
		"workloadSelector": map[string]any{"labels": map[string]any{"app": name}},
		// A relative insert without a priority may land out of order (IST0151).
		"priority": int64(10),
		"configPatches": []any{map[string]any{
			"applyTo": "HTTP_FILTER",
			"match": map[string]any{
				"context":  "SIDECAR_INBOUND",
				"listener": map[string]any{"portNumber": int64(port), "filterChain": beforeRouter()},
			},
			"patch": map[string]any{
				"operation": "INSERT_BEFORE",
				"value":     map[string]any{"name": "envoy.filters.http.local_ratelimit", "typed_config": localRateLimit(l)},
			},
		}},
	}
}

// istioJWTRule is a RequestAuthentication's rule for a design's JWT: the issuer and its keys,
// the audiences, where the token is read from and the claims copied into headers.
func istioJWTRule(j *schema.JWT) map[string]any {
	rule := map[string]any{"issuer": j.Issuer, "jwksUri": j.JWKSURI}
	if len(j.Audiences) > 0 {
		rule["audiences"] = stringsAny(j.Audiences)
	}
	if j.Forward {
		rule["forwardOriginalToken"] = true
	}
	if f := j.From; f != nil {
		if f.Header != "" {
			h := map[string]any{"name": f.Header}
			if f.Prefix != "" {
				h["prefix"] = f.Prefix
			}
			rule["fromHeaders"] = []any{h}
		}
		if f.Query != "" {
			rule["fromParams"] = []any{f.Query}
		}
	}
	var claims []any
	for _, h := range slices.Sorted(maps.Keys(j.ClaimsToHeaders)) {
		claims = append(claims, map[string]any{"header": h, "claim": j.ClaimsToHeaders[h]})
	}
	if len(claims) > 0 {
		rule["outputClaimToHeaders"] = claims
	}
	return rule
}

// istioAccessPaths are access-rule paths as Istio's policies write them: an exact path, or a
// prefix ("/admin/*") as itself and everything below it.
func istioAccessPaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		switch base, prefix := schema.AccessPath(p); {
		case prefix && base == "/":
			out = append(out, "/*")
		case prefix:
			out = append(out, base, base+"/*")
		default:
			out = append(out, base)
		}
	}
	return out
}
