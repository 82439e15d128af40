package render

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

func compileIstioIngress(in *compileInput, hosts []ingressHost, out *output) error {
	limited, err := istioGatewayRateLimits(in, hosts, out)
	if err != nil {
		return err
	}
	warnEdgeResilience(hosts, "istio", out)
	if err := istioGatewayPolicies(in, hosts, out); err != nil {
		return err
	}
	ns := in.design.Namespace
	var servers []any
	for _, h := range hosts {
		if !h.owned {
			continue
		}
		if h.passthrough != nil {
			servers = append(servers, map[string]any{"hosts": []any{ns + "/" + h.host},
				"port": map[string]any{"number": int64(443), "name": "tls-" + slug(h.host), "protocol": "TLS"},
				"tls":  map[string]any{"mode": "PASSTHROUGH"}})
			continue
		}
		// Only the host's own VirtualService binds to it; the teams' are delegates of it.
		bind := []any{ns + "/" + h.host}
		server := map[string]any{"hosts": bind, "port": map[string]any{"number": int64(80), "name": "http-" + slug(h.host), "protocol": "HTTP"}}
		if h.tls != nil {
			if h.tls.Namespace != "" && h.tls.Namespace != ns {
				out.warn("ingress %s: istio reads TLS secrets from the ingress gateway's namespace; %s/%s must be available there", h.host, h.tls.Namespace, h.tls.Secret)
			}
			server["port"] = map[string]any{"number": int64(443), "name": "https-" + slug(h.host), "protocol": "HTTPS"}
			tls := map[string]any{"mode": "SIMPLE", "credentialName": h.tls.Secret}
			if v := h.tls.MinVersion; v != "" {
				tls["minProtocolVersion"] = "TLSV" + strings.ReplaceAll(v, ".", "_")
			}
			if ca := h.tls.ClientCA; ca != nil {
				// Istio reads the CA from the credential's own ca.crt or from <credential>-cacert.
				if ca.Secret != h.tls.Secret && ca.Secret != h.tls.Secret+"-cacert" {
					return in.fail(fmt.Sprintf("ingress.hosts.%q.tls.clientCA.secret", h.host), "istio reads the client CA from the certificate's Secret (key ca.crt) or from %s-cacert, not from %s; without it clients would not be checked", h.tls.Secret, ca.Secret)
				}
				tls["mode"] = "MUTUAL"
				if ca.Optional {
					tls["mode"] = "OPTIONAL_MUTUAL"
				}
			}
			server["tls"] = tls
			// Plain HTTP to the host gets a redirect to https, as Contour does on its own.
			servers = append(servers, map[string]any{"hosts": bind, "port": map[string]any{"number": int64(80), "name": "http-" + slug(h.host), "protocol": "HTTP"},
				"tls": map[string]any{"httpsRedirect": true}})
		}
		servers = append(servers, server)
	}
	if len(servers) > 0 {
		out.add(newObject("networking.istio.io/v1", "Gateway", ns, ingressGateway, map[string]any{
			"selector": map[string]any{"istio": "ingressgateway"},
			"servers":  servers,
		}))
	}
	for _, h := range hosts {
		if h.passthrough != nil {
			var route []any
			for _, b := range h.passthrough {
				dest := map[string]any{"host": host(b.Service, ns), "port": map[string]any{"number": backendPort(in, b)}}
				if b.Version != "" {
					dest["subset"] = b.Version
				}
				route = append(route, map[string]any{"destination": dest, "weight": int64(b.Weight)})
			}
			out.add(newObject("networking.istio.io/v1", "VirtualService", ns, "ingress-"+slug(h.host), map[string]any{
				"gateways": []any{ns + "/" + ingressGateway},
				"hosts":    []any{h.host},
				"tls":      []any{map[string]any{"match": []any{map[string]any{"sniHosts": []any{h.host}, "port": int64(443)}}, "route": route}},
			}))
			continue
		}
		var routes []any
		for _, r := range byPrecedence(append(slices.Clone(h.routes), delegations(h)...)) {
			if r.delegateTo != "" {
				routes = append(routes, istioDelegateRoute(h, r))
				continue
			}
			if !h.owned && r.kind == schema.PathRegex {
				return in.fail(r.src+".regex", "istio merges a team's routes into the owner's under its prefix, and refuses a regex there (it cannot tell the regex stays inside the prefix); use exact paths and prefixes, or the contour provider")
			}
			if r.Redirect != nil && r.Redirect.Prefix != "" {
				return in.fail("ingress "+h.host+r.path+": redirect.prefix", "istio replaces the whole path on a redirect, so the matched prefix cannot be swapped; use redirect.path, or the contour or gateway-api provider")
			}
			for _, route := range istioIngressRoutes(in, r) {
				if h.cors != nil && r.Upstream() {
					route.(map[string]any)["corsPolicy"] = istioCORS(h.cors)
				}
				if name, ok := limited[r.src]; ok {
					route.(map[string]any)["name"] = name
				}
				routes = append(routes, route)
			}
		}
		if !h.owned {
			// A delegate: bound to no gateway and no host, it is merged into the owner's
			// VirtualService where that routes the claimed prefix here.
			out.add(newObject("networking.istio.io/v1", "VirtualService", ns, "ingress-"+slug(h.host), map[string]any{"http": routes}))
			continue
		}
		out.add(newObject("networking.istio.io/v1", "VirtualService", ns, "ingress-"+slug(h.host), map[string]any{
			"gateways": []any{ns + "/" + ingressGateway},
			"hosts":    []any{h.host},
			"http":     routes,
		}))
	}
	externals := externalUpstreams(hosts)
	for _, host := range slices.Sorted(maps.Keys(externals)) {
		e := externals[host]
		protocol := "HTTP"
		if e.TLS {
			protocol = "TLS"
		}
		out.add(newObject("networking.istio.io/v1", "ServiceEntry", ns, "ext-"+slug(host), map[string]any{
			"hosts":      []any{host},
			"location":   "MESH_EXTERNAL",
			"resolution": "DNS",
			"ports":      []any{map[string]any{"number": int64(e.Port), "name": strings.ToLower(protocol), "protocol": protocol}},
		}))
		if e.TLS {
			// caCertificates "system" is what istiod uses when none is given (the proxy's OS
			// roots); said outright, Istio's analyzers see that the server is verified.
			out.add(newObject("networking.istio.io/v1", "DestinationRule", ns, "ext-"+slug(host), map[string]any{
				"host":          host,
				"trafficPolicy": map[string]any{"tls": map[string]any{"mode": "SIMPLE", "sni": host, "caCertificates": "system"}},
			}))
		}
	}
	return nil
}

// delegations are a host's delegated prefixes as routes of the owner's, each handing its
// requests to the team's VirtualService.
func delegations(h ingressHost) []ingressRoute {
	var out []ingressRoute
	for _, d := range h.delegate {
		out = append(out, ingressRoute{kind: schema.PathPrefix, path: d.Prefix, delegateTo: d.Namespace})
	}
	return out
}

// istioDelegateRoute hands a delegated prefix to the team's VirtualService. Istio merges the
// team's routes in at this place in the owner's list (their matches within the prefix's), so
// they are tried where the prefix is, however old either VirtualService is: VirtualServices of
// one host merged side by side are tried oldest first, and the owner's / would take the
// teams' requests. The host's CORS policy is passed on to the team's routes.
func istioDelegateRoute(h ingressHost, r ingressRoute) map[string]any {
	base := strings.TrimSuffix(r.path, "/")
	matches := []any{map[string]any{"uri": map[string]any{"prefix": "/"}}}
	if base != "" {
		matches = []any{map[string]any{"uri": map[string]any{"exact": base}}, map[string]any{"uri": map[string]any{"prefix": base + "/"}}}
	}
	route := map[string]any{
		"name":     "delegate-" + r.delegateTo,
		"match":    matches,
		"delegate": map[string]any{"name": "ingress-" + slug(h.host), "namespace": r.delegateTo},
	}
	if h.cors != nil {
		route["corsPolicy"] = istioCORS(h.cors)
	}
	return route
}

// istioIngressRoutes renders a route for an Istio gateway. Istio's uri rewrite replaces the
// characters a prefix match matched, so a prefix rewrite of /shop would turn /shop/cart into
// //cart (rewrite /) or /apicart (rewrite /api): such a route becomes two, the path itself
// (rewritten to the new prefix) and everything under it (to the new prefix and a slash).
func istioIngressRoutes(in *compileInput, r ingressRoute) []any {
	// A whole-path or regex rewrite: uri replaces the whole path only after an exact match, so
	// any other is a regex rewrite of the path (never its query).
	var whole map[string]any
	if rw := r.Rewrite; rw != nil && rw.Regex != nil {
		whole = map[string]any{"uriRegexRewrite": map[string]any{"match": rw.Regex.Match, "rewrite": rw.Regex.Substitution}}
	} else if rw != nil && rw.Path != "" {
		whole = map[string]any{"uriRegexRewrite": map[string]any{"match": "^.*$", "rewrite": rw.Path}}
		if r.kind == schema.PathExact {
			whole = map[string]any{"uri": rw.Path}
		}
	}
	switch r.kind {
	case schema.PathExact:
		return []any{istioIngressRoute(in, r, whole, map[string]any{"exact": r.path})}
	case schema.PathRegex:
		return []any{istioIngressRoute(in, r, whole, map[string]any{"regex": r.path})}
	}
	p := rewritePrefix(r)
	if r.path == "/" {
		if p != "" {
			whole = map[string]any{"uri": p}
		}
		return []any{istioIngressRoute(in, r, whole, map[string]any{"prefix": r.path})}
	}
	// Istio matches a prefix as a string: /shop would also take /shopping. The path itself and
	// everything under a slash give it the meaning it has on every provider.
	base := strings.TrimSuffix(r.path, "/")
	exact, under := map[string]any{"exact": base}, map[string]any{"prefix": base + "/"}
	if p == "" {
		return []any{istioIngressRoute(in, r, whole, exact, under)}
	}
	return []any{
		istioIngressRoute(in, r, map[string]any{"uri": p}, exact),
		istioIngressRoute(in, r, map[string]any{"uri": strings.TrimSuffix(p, "/") + "/"}, under),
	}
}

// istioIngressRoute renders one HTTP route matching any of the uris, with pathRewrite (uri or
// uriRegexRewrite) as its rewrite of the path.
func istioIngressRoute(in *compileInput, r ingressRoute, pathRewrite map[string]any, uris ...map[string]any) map[string]any {
	var matches []any
	for _, uri := range uris {
		match := map[string]any{"uri": uri}
		hs, without := map[string]any{}, map[string]any{}
		for k, m := range r.Headers {
			if m.Absent {
				without[strings.ToLower(k)] = istioValueMatch(m)
			} else {
				hs[strings.ToLower(k)] = istioValueMatch(m)
			}
		}
		if len(hs) > 0 {
			match["headers"] = hs
		}
		if len(without) > 0 {
			match["withoutHeaders"] = without
		}
		if r.Method != "" {
			match["method"] = map[string]any{"exact": r.Method}
		}
		if len(r.Query) > 0 {
			qs := map[string]any{}
			for k, m := range r.Query {
				qs[k] = istioValueMatch(m)
			}
			match["queryParams"] = qs
		}
		matches = append(matches, match)
	}
	route := map[string]any{"match": matches}
	if r.Respond != nil {
		dr := map[string]any{"status": int64(r.Respond.Status)}
		if r.Respond.Body != "" {
			dr["body"] = map[string]any{"string": r.Respond.Body}
		}
		route["directResponse"] = dr
		return route
	}
	if r.Redirect != nil {
		route["redirect"] = redirect(r.Redirect, "redirectCode", "authority", "uri", func(p string) any { return p })
		return route
	}
	var dests []any
	for _, b := range r.Backends {
		dest := map[string]any{"port": map[string]any{"number": backendPort(in, b)}}
		if b.External != nil {
			dest["host"] = b.External.Host
		} else {
			dest["host"] = host(b.Service, in.design.Namespace)
			if b.Version != "" {
				dest["subset"] = b.Version
			}
		}
		dests = append(dests, map[string]any{"destination": dest, "weight": int64(b.Weight)})
	}
	route["route"] = dests
	rewrite := map[string]any{}
	if host := upstreamHost(r); host != "" {
		rewrite["authority"] = host
	}
	maps.Copy(rewrite, pathRewrite)
	if len(rewrite) > 0 {
		route["rewrite"] = rewrite
	}
	if r.Timeout != nil {
		route["timeout"] = r.Timeout.Text
	}
	if r.Retries != nil {
		rr := map[string]any{"attempts": int64(r.Retries.Attempts)}
		if r.Retries.PerTryTimeout != nil {
			rr["perTryTimeout"] = r.Retries.PerTryTimeout.Text
		}
		istioRetryPolicy(r.Retries, rr)
		route["retries"] = rr
	}
	headers := map[string]any{}
	if r.RequestHeaders != nil {
		headers["request"] = istioHeaderOps(r.RequestHeaders)
	}
	if r.ResponseHeaders != nil {
		headers["response"] = istioHeaderOps(r.ResponseHeaders)
	}
	if len(headers) > 0 {
		route["headers"] = headers
	}
	return route
}

// istioValueMatch is a header's or query parameter's match as Istio's StringMatch. Presence
// (and, under withoutHeaders, absence) is the regex .*: Envoy matches a header or parameter
// only when it is present.
func istioValueMatch(m schema.HeaderMatch) map[string]any {
	switch {
	case m.Exact != nil:
		return map[string]any{"exact": *m.Exact}
	case m.Prefix != "":
		return map[string]any{"prefix": m.Prefix}
	case m.Regex != "":
		return map[string]any{"regex": m.Regex}
	}
	return map[string]any{"regex": ".*"}
}

func istioHeaderOps(h *schema.HeaderPolicy) map[string]any {
	m := map[string]any{}
	if len(h.Set) > 0 {
		set := map[string]any{}
		for k, v := range h.Set {
			set[k] = v
		}
		m["set"] = set
	}
	if len(h.Remove) > 0 {
		m["remove"] = stringsAny(h.Remove)
	}
	return m
}

// istioCORS is a host's CORS policy as a route's corsPolicy.
func istioCORS(c *schema.CORS) map[string]any {
	cp := corsFields(c, "allowOrigins", func(o string) any { return map[string]any{"exact": o} })
	if c.MaxAge != nil {
		cp["maxAge"] = c.MaxAge.Text
	}
	return cp
}
