package render

import (
	"maps"
	"slices"

	"github.com/meshcd/meshcd/schema"
)

// compileContour renders a design's ingress as Contour HTTPProxies: a root proxy per owned host
// (with its includes for delegated prefixes) and a child proxy per claim.
func compileContour(in *compileInput, ing *schema.Ingress, hosts []ingressHost, out *output) error {
	ns := in.design.Namespace
	if !in.cluster.Contour.ExternalNameServices {
		for _, h := range hosts {
			for _, r := range h.routes {
				if host := externalHost(r); host != "" {
					return in.fail(r.src+".backends", "the upstream %s outside the cluster needs Contour's enableExternalNameService, which is off unless the cluster says contour: {externalNameServices: true}; without it Contour marks the HTTPProxy invalid", host)
				}
			}
		}
	}
	for _, h := range hosts {
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
			if h.tls != nil {
				secret := h.tls.Secret
				if h.tls.Namespace != "" && h.tls.Namespace != ns {
					secret = h.tls.Namespace + "/" + secret
				}
				vh["tls"] = map[string]any{"secretName": secret}
				if v := h.tls.MinVersion; v != "" {
					vh["tls"].(map[string]any)["minimumProtocolVersion"] = v
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
		var routes []any
		for _, r := range h.routes {
			// An included proxy's conditions are relative to the prefix it was included under.
			p := r.path
			if !h.owned {
				p = r.Prefix
			}
			routes = append(routes, contourRoute(in, p, r))
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

func contourRoute(in *compileInput, prefix string, r ingressRoute) map[string]any {
	conds := []any{map[string]any{"prefix": prefix}}
	for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
		conds = append(conds, map[string]any{"header": map[string]any{"name": k, "exact": r.Headers[k]}})
	}
	route := map[string]any{"conditions": conds}
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
		services = append(services, s)
	}
	route["services"] = services
	if r.Timeout != nil {
		route["timeoutPolicy"] = map[string]any{"response": r.Timeout.Text}
	}
	if r.Retries != nil {
		rp := map[string]any{"count": int64(r.Retries.Attempts)}
		if r.Retries.PerTryTimeout != nil {
			rp["perTryTimeout"] = r.Retries.PerTryTimeout.Text
		}
		if len(r.Retries.On) > 0 {
			rp["retryOn"] = stringsAny(r.Retries.On)
		}
		route["retryPolicy"] = rp
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
