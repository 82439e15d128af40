package render

import (
	"maps"
	"slices"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

// ingressGateway is the name of the Gateway a design that owns hosts renders (gateway-api and
// istio providers); claims in other namespaces attach to it.
const ingressGateway = "ingress"

// ingressRoute is one route as a provider renders it: its full path prefix on the host and
// what it sends where.
type ingressRoute struct {
	path string
	schema.IngressRoute
}

// ingressHost is everything one design renders for one host: the host it owns, or its claim on
// another design's host.
type ingressHost struct {
	host     string
	owned    bool
	owner    string // namespace of the owning design (claims)
	tls      *schema.TLSRef
	cors     *schema.CORS
	delegate []schema.Delegation
	routes   []ingressRoute
}

func designHosts(in *schema.Ingress) []ingressHost {
	var out []ingressHost
	for _, host := range slices.Sorted(maps.Keys(in.Hosts)) {
		vh := in.Hosts[host]
		h := ingressHost{host: host, owned: true, tls: vh.TLS, cors: vh.CORS, delegate: vh.Delegate}
		for _, r := range vh.Routes {
			h.routes = append(h.routes, ingressRoute{path: r.Prefix, IngressRoute: r})
		}
		out = append(out, h)
	}
	for _, c := range in.Claims {
		h := ingressHost{host: c.Host, owner: c.Owner}
		for _, r := range c.Routes {
			h.routes = append(h.routes, ingressRoute{path: joinPrefix(c.Prefix, r.Prefix), IngressRoute: r})
		}
		out = append(out, h)
	}
	return out
}

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
		for _, r := range h.routes {
			for _, b := range r.Backends {
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
	var prefixes []string
	for _, d := range h.delegate {
		prefixes = append(prefixes, d.Prefix)
	}
	out.warn("ingress %s: cors: %s sets CORS per route, so the routes claimed under %s do not get it (browsers refuse their cross-origin answers); Contour applies it to the whole host", h.host, provider, strings.Join(prefixes, ", "))
}

func compileContour(in *compileInput, ing *schema.Ingress, hosts []ingressHost, out *output) error {
	ns := in.design.Namespace
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

func gatewayClassName(c *schema.Cluster) string {
	if s, ok := c.Values["gatewayClassName"].(string); ok && s != "" {
		return s
	}
	return "meshcd"
}

func compileGatewayIngress(in *compileInput, ing *schema.Ingress, hosts []ingressHost, out *output) error {
	ns := in.design.Namespace
	var listeners []any
	for _, h := range hosts {
		if !h.owned {
			continue
		}
		l := map[string]any{"name": slug(h.host), "hostname": h.host, "port": int64(80), "protocol": "HTTP"}
		if h.tls != nil {
			ref := map[string]any{"kind": "Secret", "group": "", "name": h.tls.Secret}
			if h.tls.Namespace != "" && h.tls.Namespace != ns {
				ref["namespace"] = h.tls.Namespace
			}
			l["port"], l["protocol"] = int64(443), "HTTPS"
			l["tls"] = map[string]any{"mode": "Terminate", "certificateRefs": []any{ref}}
		}
		allowed := map[string]any{"from": "Same"}
		if len(h.delegate) > 0 {
			nss := []string{ns}
			for _, d := range h.delegate {
				nss = append(nss, d.Namespace)
			}
			allowed = map[string]any{"from": "Selector", "selector": map[string]any{"matchExpressions": []any{map[string]any{
				"key": "kubernetes.io/metadata.name", "operator": "In", "values": stringsAny(nss),
			}}}}
		}
		l["allowedRoutes"] = map[string]any{"namespaces": allowed}
		listeners = append(listeners, l)
		if h.tls != nil {
			if h.tls.MinVersion != "" {
				return in.fail("ingress.hosts."+h.host+".tls.minVersion", "gateway-api has no standard minimum TLS version, so clients with older TLS would be let in; remove minVersion for this cluster or use the contour or istio provider")
			}
			// Plain HTTP to the host gets a redirect to https, as Contour does on its own.
			listeners = append(listeners, map[string]any{"name": slug(h.host) + "-http", "hostname": h.host, "port": int64(80), "protocol": "HTTP",
				"allowedRoutes": map[string]any{"namespaces": map[string]any{"from": "Same"}}})
			out.add(newObject("gateway.networking.k8s.io/v1", "HTTPRoute", ns, "ingress-"+slug(h.host)+"-https-redirect", map[string]any{
				"parentRefs": []any{map[string]any{"name": ingressGateway, "sectionName": slug(h.host) + "-http"}},
				"hostnames":  []any{h.host},
				"rules": []any{map[string]any{"filters": []any{map[string]any{"type": "RequestRedirect",
					"requestRedirect": map[string]any{"scheme": "https", "statusCode": int64(301)}}}}},
			}))
		}
	}
	if len(listeners) > 0 {
		out.add(newObject("gateway.networking.k8s.io/v1", "Gateway", ns, ingressGateway, map[string]any{
			"gatewayClassName": gatewayClassName(in.cluster),
			"listeners":        listeners,
		}))
	}
	for _, h := range hosts {
		parent := map[string]any{"name": ingressGateway, "sectionName": slug(h.host)}
		if !h.owned {
			parent["namespace"] = h.owner
		}
		var rules []any
		warnCORSPerRoute(h, "gateway-api", out)
		for _, r := range h.routes {
			rule := gatewayRule(in, r)
			if h.cors != nil && r.Redirect == nil {
				cors := corsFields(h.cors, "allowOrigins", func(o string) any { return o })
				if h.cors.MaxAge != nil {
					cors["maxAge"] = int64(h.cors.MaxAge.Seconds())
				}
				filters, _ := rule["filters"].([]any)
				rule["filters"] = append(filters, map[string]any{"type": "CORS", "cors": cors})
			}
			rules = append(rules, rule)
			if r.Retries != nil {
				out.warn("ingress %s%s: gateway-api (standard channel) has no retries; not rendered", h.host, r.path)
			}
		}
		out.add(newObject("gateway.networking.k8s.io/v1", "HTTPRoute", ns, "ingress-"+slug(h.host), map[string]any{
			"parentRefs": []any{parent},
			"hostnames":  []any{h.host},
			"rules":      rules,
		}))
	}
	externals := externalUpstreams(hosts)
	for _, host := range slices.Sorted(maps.Keys(externals)) {
		if !externals[host].TLS {
			continue
		}
		out.add(newObject("gateway.networking.k8s.io/v1", "BackendTLSPolicy", ns, "ext-"+slug(host), map[string]any{
			"targetRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "ext-" + slug(host)}},
			"validation": map[string]any{"hostname": host, "wellKnownCACertificates": "System"},
		}))
	}
	// A Gateway elsewhere may use this namespace's delegated TLS secrets.
	for _, t := range ing.TLSDelegations {
		var from []any
		for _, to := range t.To {
			from = append(from, map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": to})
		}
		out.add(newObject("gateway.networking.k8s.io/v1beta1", "ReferenceGrant", ns, "tls-"+t.Secret, map[string]any{
			"from": from,
			"to":   []any{map[string]any{"group": "", "kind": "Secret", "name": t.Secret}},
		}))
	}
	return nil
}

func gatewayRule(in *compileInput, r ingressRoute) map[string]any {
	match := map[string]any{"path": map[string]any{"type": "PathPrefix", "value": r.path}}
	if len(r.Headers) > 0 {
		var hs []any
		for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
			hs = append(hs, map[string]any{"name": k, "type": "Exact", "value": r.Headers[k]})
		}
		match["headers"] = hs
	}
	rule := map[string]any{"matches": []any{match}}
	var filters []any
	if r.Redirect != nil {
		rd := redirect(r.Redirect, "statusCode", "hostname", "path", func(p string) any {
			return map[string]any{"type": "ReplaceFullPath", "replaceFullPath": p}
		})
		if r.Redirect.Prefix != "" {
			rd["path"] = map[string]any{"type": "ReplacePrefixMatch", "replacePrefixMatch": r.Redirect.Prefix}
		}
		rule["filters"] = []any{map[string]any{"type": "RequestRedirect", "requestRedirect": rd}}
		return rule
	}
	var backends []any
	for _, b := range r.Backends {
		backends = append(backends, map[string]any{"name": backendService(b), "port": backendPort(in, b), "weight": int64(b.Weight)})
	}
	rule["backendRefs"] = backends
	if r.RequestHeaders != nil {
		filters = append(filters, map[string]any{"type": "RequestHeaderModifier", "requestHeaderModifier": headerModifier(r.RequestHeaders)})
	}
	if r.ResponseHeaders != nil {
		filters = append(filters, map[string]any{"type": "ResponseHeaderModifier", "responseHeaderModifier": headerModifier(r.ResponseHeaders)})
	}
	rewrite := map[string]any{}
	if host := upstreamHost(r); host != "" {
		rewrite["hostname"] = host
	}
	if p := rewritePrefix(r); p != "" {
		rewrite["path"] = map[string]any{"type": "ReplacePrefixMatch", "replacePrefixMatch": p}
	}
	if len(rewrite) > 0 {
		filters = append(filters, map[string]any{"type": "URLRewrite", "urlRewrite": rewrite})
	}
	if len(filters) > 0 {
		rule["filters"] = filters
	}
	if r.Timeout != nil {
		rule["timeouts"] = map[string]any{"request": r.Timeout.Text}
	}
	return rule
}

func headerModifier(h *schema.HeaderPolicy) map[string]any {
	m := map[string]any{}
	if set := headerSets(h); len(set) > 0 {
		m["set"] = set
	}
	if len(h.Remove) > 0 {
		m["remove"] = stringsAny(h.Remove)
	}
	return m
}

func compileIstioIngress(in *compileInput, hosts []ingressHost, out *output) error {
	ns := in.design.Namespace
	var servers []any
	for _, h := range hosts {
		if !h.owned {
			continue
		}
		// Only VirtualServices of the host's own and delegated namespaces may bind to it.
		bind := []any{ns + "/" + h.host}
		for _, d := range h.delegate {
			bind = append(bind, d.Namespace+"/"+h.host)
		}
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
		warnCORSPerRoute(h, "istio", out)
		gw := ns + "/" + ingressGateway
		if !h.owned {
			gw = h.owner + "/" + ingressGateway
		}
		var routes []any
		for _, r := range h.routes {
			if r.Redirect != nil && r.Redirect.Prefix != "" {
				return in.fail("ingress "+h.host+r.path+": redirect.prefix", "istio replaces the whole path on a redirect, so the matched prefix cannot be swapped; use redirect.path, or the contour or gateway-api provider")
			}
			for _, route := range istioIngressRoutes(in, r) {
				if h.cors != nil && r.Redirect == nil {
					cp := corsFields(h.cors, "allowOrigins", func(o string) any { return map[string]any{"exact": o} })
					if h.cors.MaxAge != nil {
						cp["maxAge"] = h.cors.MaxAge.Text
					}
					route.(map[string]any)["corsPolicy"] = cp
				}
				routes = append(routes, route)
			}
		}
		out.add(newObject("networking.istio.io/v1", "VirtualService", ns, "ingress-"+slug(h.host), map[string]any{
			"gateways": []any{gw},
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
			out.add(newObject("networking.istio.io/v1", "DestinationRule", ns, "ext-"+slug(host), map[string]any{
				"host":          host,
				"trafficPolicy": map[string]any{"tls": map[string]any{"mode": "SIMPLE", "sni": host}},
			}))
		}
	}
	return nil
}

// istioIngressRoutes renders a route for an Istio gateway. Istio's uri rewrite replaces the
// characters a prefix match matched, so a prefix rewrite of /shop would turn /shop/cart into
// //cart (rewrite /) or /apicart (rewrite /api): such a route becomes two, the path itself
// (rewritten to the new prefix) and everything under it (to the new prefix and a slash).
func istioIngressRoutes(in *compileInput, r ingressRoute) []any {
	p := rewritePrefix(r)
	if p == "" || r.path == "/" {
		return []any{istioIngressRoute(in, r, map[string]any{"prefix": r.path}, p)}
	}
	base := strings.TrimSuffix(r.path, "/")
	return []any{
		istioIngressRoute(in, r, map[string]any{"exact": base}, p),
		istioIngressRoute(in, r, map[string]any{"prefix": base + "/"}, strings.TrimSuffix(p, "/")+"/"),
	}
}

func istioIngressRoute(in *compileInput, r ingressRoute, uri map[string]any, rewriteURI string) map[string]any {
	match := map[string]any{"uri": uri}
	if len(r.Headers) > 0 {
		hs := map[string]any{}
		for k, v := range r.Headers {
			hs[strings.ToLower(k)] = map[string]any{"exact": v}
		}
		match["headers"] = hs
	}
	route := map[string]any{"match": []any{match}}
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
	if rewriteURI != "" {
		rewrite["uri"] = rewriteURI
	}
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
		if len(r.Retries.On) > 0 {
			rr["retryOn"] = strings.Join(r.Retries.On, ",")
		}
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
