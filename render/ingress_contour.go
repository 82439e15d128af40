package render

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshcd/meshcd/schema"
)

// compileContour renders a design's ingress as Contour HTTPProxies: a root proxy per owned host
// (with its includes for delegated prefixes) and a child proxy per claim.
func compileContour(in *compileInput, ing *schema.Ingress, hosts []ingressHost, out *output) error {
	ns := in.design.Namespace
	for _, h := range hosts {
		for _, r := range h.routes {
			if rw := r.Rewrite; rw != nil && rw.Path != "" {
				return in.fail(r.src+".rewrite.path", "contour rewrites only the prefix a route matched (pathRewritePolicy.replacePrefix, on a prefix condition), never the whole path; for an exact route, a prefix route with rewrite.prefix does it, and rewrites what is under it too")
			}
			if rw := r.Rewrite; rw != nil && rw.Regex != nil {
				return in.fail(r.src+".rewrite.regex", "contour has no regex rewrite; only istio renders one")
			}
		}
	}
	if !in.cluster.Contour.ExternalNameServices {
		for _, h := range hosts {
			for _, r := range h.routes {
				if host := externalHost(r); host != "" {
					return in.fail(r.src+".backends", "the upstream %s outside the cluster needs Contour's enableExternalNameService, which is off unless the cluster says contour: {externalNameServices: true}; without it Contour marks the HTTPProxy invalid", host)
				}
			}
		}
	}
	// One ExtensionService per authorization server, however many hosts it checks.
	extensions := map[string]*unstructured.Unstructured{}
	defer func() {
		for _, name := range slices.Sorted(maps.Keys(extensions)) {
			out.add(extensions[name])
		}
	}()
	for _, h := range hosts {
		if h.passthrough != nil {
			var services []any
			for _, s := range passthroughServices(in, h) {
				services = append(services, s)
			}
			out.add(newObject("projectcontour.io/v1", "HTTPProxy", ns, slug(h.host), map[string]any{
				"virtualhost": map[string]any{"fqdn": h.host, "tls": map[string]any{"passthrough": true}},
				"tcpproxy":    map[string]any{"services": services},
			}))
			continue
		}
		spec := map[string]any{}
		if h.owned {
			vh := map[string]any{"fqdn": h.host}
			if h.cors != nil {
				cp := corsFields(h.cors, "allowOrigin", func(o string) any { return o })
				if h.cors.MaxAge != nil {
					cp["maxAge"] = h.cors.MaxAge.Text
				}
				vh["corsPolicy"] = cp
			}
			if h.limit != nil {
				vh["rateLimitPolicy"] = contourRateLimit(h.limit)
			}
			contourIPFilters(vh, h.access)
			if a := h.extAuth; a != nil {
				if a.Provider != "" {
					return in.fail(fmt.Sprintf("ingress.hosts.%q.extAuth.provider", h.host), "contour checks requests with an ExtensionService it builds from the server's Service: say extAuth.service and port, not an Istio provider")
				}
				auth := map[string]any{"extensionRef": map[string]any{"name": a.Service + "-extauth", "namespace": ns}}
				if a.FailOpen {
					auth["failOpen"] = true
				}
				if a.Timeout != nil {
					auth["responseTimeout"] = a.Timeout.Text
				}
				vh["authorization"] = auth
				protocol := "h2c"
				if a.TLS {
					protocol = "h2"
					out.warn("ingress %s: extAuth: Contour does not verify the authorization server's certificate unless its ExtensionService names a CA, which a design cannot say yet; the connection is encrypted but not authenticated", h.host)
				}
				extensions[a.Service+"-extauth"] = newObject("projectcontour.io/v1alpha1", "ExtensionService", ns, a.Service+"-extauth", map[string]any{
					"protocol": protocol,
					"services": []any{map[string]any{"name": a.Service, "port": int64(a.Port)}},
				})
			}
			if j := h.jwt; j != nil && (j.From != nil || len(j.ClaimsToHeaders) > 0) {
				at := fmt.Sprintf("ingress.hosts.%q.jwt", h.host)
				if j.From != nil {
					return in.fail(at+".from", "contour reads tokens from Authorization: Bearer only; clients sending them elsewhere would all be refused")
				}
				return in.fail(at+".claimsToHeaders", "contour does not copy claims into headers; upstreams relying on them would get requests without them")
			}
			if j := h.jwt; j != nil {
				// The one provider is the default: every route, included ones too, requires it.
				p := map[string]any{"name": "jwt", "issuer": j.Issuer, "default": true,
					"remoteJWKS": map[string]any{"uri": j.JWKSURI}}
				if len(j.Audiences) > 0 {
					p["audiences"] = stringsAny(j.Audiences)
				}
				if j.Forward {
					p["forwardJWT"] = true
				}
				vh["jwtProviders"] = []any{p}
			}
			if h.tls != nil {
				secret := h.tls.Secret
				if h.tls.Namespace != "" && h.tls.Namespace != ns {
					secret = h.tls.Namespace + "/" + secret
				}
				vh["tls"] = map[string]any{"secretName": secret}
				if v := h.tls.MinVersion; v != "" {
					vh["tls"].(map[string]any)["minimumProtocolVersion"] = v
				}
				if ca := h.tls.ClientCA; ca != nil {
					cv := map[string]any{"caSecret": ca.Secret}
					if ca.Optional {
						cv["optionalClientCertificate"] = true
					}
					vh["tls"].(map[string]any)["clientValidation"] = cv
				}
			}
			spec["virtualhost"] = vh
			var includes []any
			for _, d := range h.delegate {
				includes = append(includes, map[string]any{
					"name": slug(h.host), "namespace": d.Namespace,
					"conditions": []any{map[string]any{"prefix": d.Prefix}},
				})
			}
			if len(includes) > 0 {
				spec["includes"] = includes
			}
		}
		rewritten := map[string]int{}
		for _, r := range h.routes {
			if r.Retries != nil && r.Retries.Backoff != nil {
				out.warn("ingress %s%s: retries.backoff: Contour has no retry backoff; Envoy's default (25ms, doubling) applies", h.host, r.path)
			}
			if rewritePrefix(r) != "" && r.path != "/" {
				if rewritten[r.path]++; rewritten[r.path] == 2 {
					out.warn("ingress %s%s: contour serves the path itself (without its slash) only for a single rewritten route, and %s has several (by method or headers): a request for exactly %s reaches the host's other routes", h.host, r.path, r.path, r.path)
				}
			}
		}
		var routes []any
		for _, r := range h.routes {
			for _, cond := range contourPaths(h, r) {
				routes = append(routes, contourRoute(in, cond, r))
			}
		}
		if h.owned {
			routes = append(routes, contourGuards(in, h, out)...)
		}
		spec["routes"] = routes
		out.add(newObject("projectcontour.io/v1", "HTTPProxy", ns, slug(h.host), spec))
	}
	if len(ing.TLSDelegations) > 0 {
		var dels []any
		for _, t := range ing.TLSDelegations {
			dels = append(dels, map[string]any{"secretName": t.Secret, "targetNamespaces": stringsAny(t.To)})
		}
		out.add(newObject("projectcontour.io/v1", "TLSCertificateDelegation", ns, "tls-delegation", map[string]any{"delegations": dels}))
	}
	return nil
}

// contourPaths are the path conditions that give a route's prefix its one meaning on every
// provider: the path itself and everything under it, never a longer word (/shop matches /shop
// and /shop/cart, not /shopping). Contour matches a prefix as a string, so a root proxy's route
// becomes an exact and a slash-ended prefix condition. An included proxy's conditions are
// appended to the include's prefix, which only a regex can end exactly; Envoy matches it whole.
// Contour's prefix rewrite needs a prefix condition (which it widens to the string prefix), so
// a rewritten route keeps one; contourGuards keeps longer words away from it.
func contourPaths(h ingressHost, r ingressRoute) []map[string]any {
	p := r.path
	if !h.owned {
		// Relative to the prefix the owner included this proxy under: Contour joins the two
		// as designHosts does.
		_, p = r.PathMatch()
	}
	switch {
	case r.kind == schema.PathExact:
		return []map[string]any{{"exact": p}}
	case r.kind == schema.PathRegex:
		return []map[string]any{{"regex": p}}
	case rewritePrefix(r) != "":
		return []map[string]any{{"prefix": p}}
	case !h.owned && p == "/":
		// The include's prefix itself, or anything under it; Contour wants a regex to start
		// with a slash.
		return []map[string]any{{"regex": "/?|/.*"}}
	case !h.owned:
		return []map[string]any{{"regex": regexp.QuoteMeta(strings.TrimSuffix(p, "/")) + "(/.*)?"}}
	case p == "/":
		return []map[string]any{{"prefix": "/"}}
	}
	base := strings.TrimSuffix(p, "/")
	return []map[string]any{{"exact": base}, {"prefix": base + "/"}}
}

// contourGuards are a root proxy's routes for the longer words a string prefix would take:
// /shopping, under a delegated or rewritten /shop, goes where the host's other routes send it
// (its / route, or a 404 without one). Contour puts regex routes before prefix routes, so a
// guard wins over the /shop prefix. Where the host has a route of its own under such a word
// (/shopping/...), a guard would take that too: then there is none, and a warning says so.
func contourGuards(in *compileInput, h ingressHost, out *output) []any {
	var words []string
	for _, d := range h.delegate {
		words = append(words, d.Prefix)
	}
	var fallback *ingressRoute
	for i, r := range h.routes {
		if rewritePrefix(r) != "" {
			words = append(words, r.path)
		}
		if r.kind == schema.PathPrefix && r.path == "/" && len(r.Headers) == 0 && r.Method == "" && len(r.Query) == 0 {
			fallback = &h.routes[i]
		}
	}
	var guards []any
	for _, w := range words {
		base := strings.TrimSuffix(w, "/")
		if base == "" {
			continue
		}
		clash := ""
		for _, r := range h.routes {
			p := r.path
			switch r.kind {
			case schema.PathExact:
				continue // Contour tries exact paths before any regex
			case schema.PathRegex:
				// A regex of the host's, and the guard, are tried longest first: what the
				// regex could match under the longer words is where they would compete.
				re, err := regexp.Compile(p)
				if err != nil {
					continue // refused by validation
				}
				p, _ = re.LiteralPrefix()
			}
			if strings.HasPrefix(p, base) && len(p) > len(base) && p[len(base)] != '/' {
				clash = r.MatchText()
			}
		}
		if clash != "" {
			out.warn("ingress %s%s: contour matches it as a string, and the host's own %s keeps meshcd from guarding the longer words: paths such as %sx reach %s", h.host, base, clash, base, base)
			continue
		}
		cond := map[string]any{"regex": regexp.QuoteMeta(base) + "[^/].*"}
		if fallback != nil {
			guards = append(guards, contourRoute(in, cond, *fallback))
		} else {
			guards = append(guards, map[string]any{"conditions": []any{cond}, "directResponsePolicy": map[string]any{"statusCode": int64(404)}})
		}
	}
	return guards
}

func contourRoute(in *compileInput, path map[string]any, r ingressRoute) map[string]any {
	conds := []any{path}
	for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
		hc := map[string]any{"name": k}
		switch m := r.Headers[k]; {
		case m.Exact != nil:
			hc["exact"] = *m.Exact
		case m.Present:
			hc["present"] = true
		case m.Absent:
			hc["notpresent"] = true
		default:
			hc["regex"], _ = m.AsRegex()
		}
		conds = append(conds, map[string]any{"header": hc})
	}
	if r.Method != "" {
		// Envoy matches the method as the :method pseudo-header.
		conds = append(conds, map[string]any{"header": map[string]any{"name": ":method", "exact": r.Method}})
	}
	for _, k := range slices.Sorted(maps.Keys(r.Query)) {
		qc := map[string]any{"name": k}
		switch m := r.Query[k]; {
		case m.Exact != nil:
			qc["exact"] = *m.Exact
		case m.Prefix != "":
			qc["prefix"] = m.Prefix
		case m.Present:
			qc["present"] = true
		default:
			qc["regex"] = m.Regex
		}
		conds = append(conds, map[string]any{"queryParameter": qc})
	}
	route := map[string]any{"conditions": conds}
	if r.Respond != nil {
		dr := map[string]any{"statusCode": int64(r.Respond.Status)}
		if r.Respond.Body != "" {
			dr["body"] = r.Respond.Body
		}
		route["directResponsePolicy"] = dr
		contourIPFilters(route, r.access)
		return route
	}
	if r.Redirect != nil {
		rd := redirect(r.Redirect, "statusCode", "hostname", "path", func(p string) any { return p })
		if r.Redirect.Prefix != "" {
			rd["prefix"] = r.Redirect.Prefix
		}
		route["requestRedirectPolicy"] = rd
		return route
	}
	var services []any
	for _, b := range r.Backends {
		s := map[string]any{"name": backendService(b), "port": backendPort(in, b), "weight": int64(b.Weight)}
		if b.External != nil && b.External.TLS {
			s["protocol"] = "tls"
		}
		if b.Service != "" && in.services[b.Service].Protocol == "grpc" {
			s["protocol"] = "h2c" // gRPC servers speak HTTP/2 only
		}
		services = append(services, s)
	}
	route["services"] = services
	if r.Timeout != nil || r.IdleTimeout != nil {
		tp := map[string]any{}
		if r.Timeout != nil {
			tp["response"] = r.Timeout.Text
		}
		if r.IdleTimeout != nil {
			tp["idle"] = r.IdleTimeout.Text
		}
		route["timeoutPolicy"] = tp
	}
	if hc := r.HealthCheck; hc != nil {
		p := map[string]any{"path": hc.Path, "intervalSeconds": int64(hc.Interval.Seconds()), "timeoutSeconds": int64(hc.Timeout.Seconds()),
			"unhealthyThresholdCount": int64(hc.UnhealthyThreshold), "healthyThresholdCount": int64(hc.HealthyThreshold)}
		if hc.Host != "" {
			p["host"] = hc.Host
		}
		route["healthCheckPolicy"] = p
	}
	if r.Retries != nil {
		rp := map[string]any{"count": int64(r.Retries.Attempts)}
		if r.Retries.PerTryTimeout != nil {
			rp["perTryTimeout"] = r.Retries.PerTryTimeout.Text
		}
		on := slices.Clone(r.Retries.On)
		if len(r.Retries.Codes) > 0 {
			on = append(on, "retriable-status-codes")
			var codes []any
			for _, c := range r.Retries.Codes {
				codes = append(codes, int64(c))
			}
			rp["retriableStatusCodes"] = codes
		}
		if len(on) > 0 {
			rp["retryOn"] = stringsAny(on)
		}
		route["retryPolicy"] = rp
	}
	if r.RateLimit != nil {
		route["rateLimitPolicy"] = contourRateLimit(r.RateLimit)
	}
	contourIPFilters(route, r.access)
	if r.ExtAuth != nil && !*r.ExtAuth {
		route["authPolicy"] = map[string]any{"disabled": true}
	}
	if r.JWT != nil && !*r.JWT {
		route["jwtVerificationPolicy"] = map[string]any{"disabled": true}
	}
	if r.WebSockets {
		route["enableWebsockets"] = true // Envoy under Gateway API and Istio upgrades by default
	}
	if p := rewritePrefix(r); p != "" {
		// Without a prefix of its own, Contour replaces whatever prefix the include chain
		// matched: a claim's prefix and the route's together.
		route["pathRewritePolicy"] = map[string]any{"replacePrefix": []any{map[string]any{"replacement": p}}}
	}
	req := map[string]any{}
	if r.RequestHeaders != nil {
		if set := headerSets(r.RequestHeaders); len(set) > 0 {
			req["set"] = set
		}
		if len(r.RequestHeaders.Remove) > 0 {
			req["remove"] = stringsAny(r.RequestHeaders.Remove)
		}
	}
	if host := upstreamHost(r); host != "" {
		set, _ := req["set"].([]any)
		req["set"] = append(set, map[string]any{"name": "Host", "value": host})
	}
	if len(req) > 0 {
		route["requestHeadersPolicy"] = req
	}
	if r.ResponseHeaders != nil {
		resp := map[string]any{}
		if set := headerSets(r.ResponseHeaders); len(set) > 0 {
			resp["set"] = set
		}
		if len(r.ResponseHeaders.Remove) > 0 {
			resp["remove"] = stringsAny(r.ResponseHeaders.Remove)
		}
		route["responseHeadersPolicy"] = resp
	}
	return route
}
