package render

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/meshcd/meshcd/schema"
)

// gatewayName names the Gateway that the design owning hosts in namespace ns renders: unique in
// the cluster, so a controller given one Gateway by name (Contour's gatewayRef) reads the one
// meant, and a route's parentRef cannot be mistaken for another namespace's.
func gatewayName(ns string) string { return "ingress-" + ns }

func gatewayClassName(c *schema.Cluster) string {
	if s, ok := c.Values["gatewayClassName"].(string); ok && s != "" {
		return s
	}
	return "meshcd"
}

func compileGatewayIngress(in *compileInput, ing *schema.Ingress, hosts []ingressHost, out *output) error {
	if err := refuseRateLimits(in, hosts, "gateway-api", "no standard field yet; use the contour provider"); err != nil {
		return err
	}
	warnEdgeResilience(hosts, "gateway-api", out)
	if err := refuseJWT(in, hosts, "gateway-api", "Gateway API has no standard JWT validation; use the contour provider"); err != nil {
		return err
	}
	if err := refuseIPAccess(in, hosts, "gateway-api", "Gateway API has no standard address filter; use the contour provider"); err != nil {
		return err
	}
	ns := in.design.Namespace
	if err := gatewayExtAuthAllowed(in, hosts, out); err != nil {
		return err
	}
	for _, h := range hosts {
		for _, r := range h.routes {
			for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
				if r.Headers[k].Absent {
					return in.fail(fmt.Sprintf("%s.headers.%q", r.src, k), "gateway-api cannot match a header's absence; without it the route would also take requests that carry %s", k)
				}
			}
			if rw := r.Rewrite; rw != nil && rw.Regex != nil {
				return in.fail(r.src+".rewrite.regex", "Gateway API has no regex rewrite; only istio renders one")
			}
			if r.kind == schema.PathRegex {
				out.warn("ingress %s: regex %s: Gateway API leaves a path regex to the controller, its syntax and its order against prefixes both; Envoy-based controllers (Contour, Istio, Envoy Gateway) read RE2 over the whole path", h.host, r.path)
			}
			switch {
			case r.Respond == nil:
			case r.Respond.Status < 400:
				return in.fail(r.src+".respond", "gateway-api has no direct response; a route without backends answers 500, not %d", r.Respond.Status)
			default:
				out.warn("ingress %s%s: respond: gateway-api has no direct response; the route has no backends, so the controller answers 500 instead of %d", h.host, r.path, r.Respond.Status)
			}
		}
	}
	var listeners []any
	for _, h := range hosts {
		if !h.owned {
			continue
		}
		if h.passthrough != nil {
			listeners = append(listeners, map[string]any{"name": slug(h.host), "hostname": h.host, "port": int64(443), "protocol": "TLS",
				"tls":           map[string]any{"mode": "Passthrough"},
				"allowedRoutes": map[string]any{"namespaces": map[string]any{"from": "Same"}, "kinds": []any{map[string]any{"kind": "TLSRoute"}}}})
			var backends []any
			for _, s := range passthroughServices(in, h) {
				backends = append(backends, s)
			}
			version, err := streamRouteVersion(in, "TLSRoute", fmt.Sprintf("ingress.hosts.%q.passthrough", h.host))
			if err != nil {
				return err
			}
			out.add(newObject(version, "TLSRoute", ns, "ingress-"+slug(h.host), map[string]any{
				"parentRefs": []any{map[string]any{"name": gatewayName(ns), "namespace": ns, "sectionName": slug(h.host)}},
				"hostnames":  []any{h.host},
				"rules":      []any{map[string]any{"backendRefs": backends}},
			}))
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
				return in.fail(fmt.Sprintf("ingress.hosts.%q.tls.minVersion", h.host), "gateway-api has no standard minimum TLS version, so clients with older TLS would be let in; remove minVersion for this cluster or use the contour or istio provider")
			}
			// Plain HTTP to the host gets a redirect to https, as Contour does on its own.
			listeners = append(listeners, map[string]any{"name": slug(h.host) + "-http", "hostname": h.host, "port": int64(80), "protocol": "HTTP",
				"allowedRoutes": map[string]any{"namespaces": map[string]any{"from": "Same"}}})
			out.add(newObject("gateway.networking.k8s.io/v1", "HTTPRoute", ns, "ingress-"+slug(h.host)+"-https-redirect", map[string]any{
				"parentRefs": []any{map[string]any{"name": gatewayName(ns), "namespace": ns, "sectionName": slug(h.host) + "-http"}},
				"hostnames":  []any{h.host},
				"rules": []any{map[string]any{"filters": []any{map[string]any{"type": "RequestRedirect",
					"requestRedirect": map[string]any{"scheme": "https", "statusCode": int64(301)}}}}},
			}))
		}
	}
	if len(listeners) > 0 {
		spec := map[string]any{
			"gatewayClassName": gatewayClassName(in.cluster),
			"listeners":        listeners,
		}
		frontend, err := gatewayClientValidation(in, hosts, out)
		if err != nil {
			return err
		}
		if frontend != nil {
			spec["tls"] = map[string]any{"frontend": frontend}
		}
		out.add(newObject("gateway.networking.k8s.io/v1", "Gateway", ns, gatewayName(ns), spec))
	}
	for _, h := range hosts {
		if h.passthrough != nil {
			continue // its TLSRoute is rendered with its listener
		}
		// Always namespaced: a route that leaves the namespace out names a Gateway in its own
		// namespace, which a controller reports as NoMatchingParent on every other.
		owner := ns
		if !h.owned {
			owner = h.owner
		}
		parent := map[string]any{"name": gatewayName(owner), "namespace": owner, "sectionName": slug(h.host)}
		var rules []any
		// The CORS filter is standard from Gateway API v1.5. Earlier it is experimental, and
		// controllers that do not implement it (Contour 1.33) reject the whole route; without
		// CORS headers browsers refuse cross-origin answers, so leaving it out fails closed.
		cors := h.cors != nil && in.cluster.GatewayAPI.Minor() >= 5 && in.cluster.GatewayAPI.Supports("HTTPRouteCORS")
		if h.cors != nil && !cors && in.cluster.GatewayAPI.Minor() >= 5 {
			out.warn("ingress %s: cors: the cluster's Gateway API controller does not list HTTPRouteCORS in gatewayAPI.features; not rendered, so browsers refuse cross-origin answers", h.host)
		} else if h.cors != nil && !cors {
			out.warn("ingress %s: cors: the CORS filter is standard from Gateway API v1.5 and this cluster has %s; not rendered, so browsers refuse cross-origin answers", h.host, in.cluster.GatewayAPI)
		} else {
			warnCORSPerRoute(h, "gateway-api", out)
		}
		for _, r := range h.routes {
			rule := gatewayRule(in, r)
			if cors && r.Upstream() {
				cors := corsFields(h.cors, "allowOrigins", func(o string) any { return o })
				if h.cors.MaxAge != nil {
					cors["maxAge"] = int64(h.cors.MaxAge.Seconds())
				}
				filters, _ := rule["filters"].([]any)
				rule["filters"] = append(filters, map[string]any{"type": "CORS", "cors": cors})
			}
			if a := h.extAuth; a != nil && r.Upstream() && (r.ExtAuth == nil || *r.ExtAuth) {
				filters, _ := rule["filters"].([]any)
				rule["filters"] = append(filters, map[string]any{"type": "ExternalAuth", "externalAuth": map[string]any{
					"protocol":   "GRPC",
					"grpc":       map[string]any{}, // required with GRPC; no headers beyond the defaults
					"backendRef": map[string]any{"name": a.Service, "port": int64(a.Port)},
				}})
			}
			gatewayRetries(in, h, r, rule, out)
			rules = append(rules, rule)
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
		version, err := backendTLSPolicyVersion(in, hosts, host)
		if err != nil {
			return err
		}
		out.add(newObject(version, "BackendTLSPolicy", ns, "ext-"+slug(host), map[string]any{
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
	pathType := map[schema.PathKind]string{schema.PathPrefix: "PathPrefix", schema.PathExact: "Exact", schema.PathRegex: "RegularExpression"}[r.kind]
	match := map[string]any{"path": map[string]any{"type": pathType, "value": r.path}}
	if len(r.Headers) > 0 {
		var hs []any
		for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
			m := r.Headers[k]
			if m.Exact != nil {
				hs = append(hs, map[string]any{"name": k, "type": "Exact", "value": *m.Exact})
				continue
			}
			re, _ := m.AsRegex() // absent is refused before rules are built
			hs = append(hs, map[string]any{"name": k, "type": "RegularExpression", "value": re})
		}
		match["headers"] = hs
	}
	if r.Method != "" {
		match["method"] = r.Method
	}
	if len(r.Query) > 0 {
		var qs []any
		for _, k := range slices.Sorted(maps.Keys(r.Query)) {
			if m := r.Query[k]; m.Exact != nil {
				qs = append(qs, map[string]any{"name": k, "type": "Exact", "value": *m.Exact})
			} else {
				re, _ := m.AsRegex()
				qs = append(qs, map[string]any{"name": k, "type": "RegularExpression", "value": re})
			}
		}
		match["queryParams"] = qs
	}
	rule := map[string]any{"matches": []any{match}}
	var filters []any
	if r.Respond != nil {
		// No backend: the controller answers 500 itself (refused at validation below 400).
		return rule
	}
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
	if rw := r.Rewrite; rw != nil && rw.Path != "" {
		rewrite["path"] = map[string]any{"type": "ReplaceFullPath", "replaceFullPath": rw.Path}
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

// backendTLSPolicyVersion picks the BackendTLSPolicy version the cluster's Gateway API reads:
// v1 from v1.4 (standard), v1alpha3 in v1.2 and v1.3's experimental channel. Where there is
// none, upstream TLS cannot be said, and sending plain HTTP to a TLS port instead is refused.
func backendTLSPolicyVersion(in *compileInput, hosts []ingressHost, upstream string) (string, error) {
	src := "ingress"
	for _, h := range hosts {
		for _, r := range h.routes {
			if externalHost(r) == upstream {
				src = r.src + ".backends"
			}
		}
	}
	return tlsPolicyVersion(in, src, upstream)
}

// tlsPolicyVersion is backendTLSPolicyVersion for TLS to upstream said at the design path src.
func tlsPolicyVersion(in *compileInput, src, upstream string) (string, error) {
	g := in.cluster.GatewayAPI
	if !g.SystemRoots() {
		return "", in.fail(src, "upstream TLS to %s is verified against the system's roots, and the cluster says its Gateway API controller cannot do that (gatewayAPI: wellKnownCACertificates: false); it would send plain HTTP to a TLS port instead", upstream)
	}
	switch m := g.Minor(); {
	case m >= 4:
		return "gateway.networking.k8s.io/v1", nil
	case m >= 2 && g.Experimental():
		return "gateway.networking.k8s.io/v1alpha3", nil
	}
	return "", in.fail(src, "upstream TLS to %s needs a BackendTLSPolicy, which %s does not have (v1.4 standard, or v1.2 and v1.3 experimental, do); without it plain HTTP would go to a TLS port", upstream, in.cluster.GatewayAPI)
}

// retryCodes are the status codes each retry condition stands for in Gateway API's retry
// (which retries on status codes only): 5xx as every registered 5xx code.
var retryCodes = map[string][]int64{
	"5xx":           {500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511},
	"gateway-error": {502, 503, 504},
	"retriable-4xx": {409},
}

// gatewayRetries sets an HTTPRoute rule's retry (experimental from Gateway API v1.2) where the
// cluster serves the experimental channel, with the per-try timeout as the rule's
// backendRequest timeout. Conditions that are not status codes (reset, connect-failure, gRPC
// statuses) are left to the controller's own default, said in a warning; on the standard
// channel there is no retry at all, also said.
func gatewayRetries(in *compileInput, h ingressHost, r ingressRoute, rule map[string]any, out *output) {
	rt := r.Retries
	if rt == nil || !r.Upstream() {
		return
	}
	g := in.cluster.GatewayAPI
	switch {
	case !g.Experimental() || g.Minor() < 2:
		out.warn("ingress %s%s: %s has no retries (the experimental channel has them from v1.2; say gatewayAPI: channel: \"experimental\" if the cluster serves it); not rendered", h.host, r.path, g)
		return
	case !g.Supports("HTTPRouteRetry"):
		out.warn("ingress %s%s: the cluster's Gateway API controller does not list HTTPRouteRetry in gatewayAPI.features; retries not rendered", h.host, r.path)
		return
	}
	if rt.Attempts == 0 {
		return
	}
	retry := map[string]any{"attempts": int64(rt.Attempts)}
	var codes []any
	seen := map[int64]bool{}
	var other []string
	for _, on := range rt.On {
		cs, ok := retryCodes[on]
		if !ok {
			other = append(other, on)
		}
		for _, c := range cs {
			if !seen[c] {
				seen[c] = true
				codes = append(codes, c)
			}
		}
	}
	for _, c := range rt.Codes {
		if !seen[int64(c)] {
			seen[int64(c)] = true
			codes = append(codes, int64(c))
		}
	}
	slices.SortFunc(codes, func(a, b any) int { return int(a.(int64) - b.(int64)) })
	if rt.Backoff != nil {
		retry["backoff"] = rt.Backoff.Text
	}
	if len(codes) > 0 {
		retry["codes"] = codes
	}
	if len(other) > 0 {
		out.warn("ingress %s%s: Gateway API retries on status codes only; %s are left to the controller's default", h.host, r.path, strings.Join(other, ", "))
	}
	rule["retry"] = retry
	if rt.PerTryTimeout != nil && !g.Supports("HTTPRouteRetryBackendTimeout") {
		out.warn("ingress %s%s: the cluster's Gateway API controller does not list HTTPRouteRetryBackendTimeout; perTryTimeout not rendered", h.host, r.path)
	} else if rt.PerTryTimeout != nil {
		timeouts, _ := rule["timeouts"].(map[string]any)
		if timeouts == nil {
			timeouts = map[string]any{}
		}
		timeouts["backendRequest"] = rt.PerTryTimeout.Text
		rule["timeouts"] = timeouts
	}
}

// gatewayExtAuthAllowed refuses an authorization server Gateway API cannot put in front of
// every route it must check: before v1.4's experimental ExternalAuth filter, without the
// controller's HTTPRouteExternalAuth feature, over TLS (which would need a BackendTLSPolicy
// for it), or on a host with delegated prefixes (the filter is per route, and the teams'
// routes would not carry it). What it cannot say but leaves closed is a warning.
func gatewayExtAuthAllowed(in *compileInput, hosts []ingressHost, out *output) error {
	g := in.cluster.GatewayAPI
	for _, h := range hosts {
		a := h.extAuth
		if a == nil {
			continue
		}
		at := fmt.Sprintf("ingress.hosts.%q.extAuth", h.host)
		switch {
		case a.Provider != "":
			return in.fail(at+".provider", "gateway-api's ExternalAuth filter names the server's Service: say extAuth.service and port, not an Istio provider")
		case !g.Experimental() || g.Minor() < 4:
			return in.fail(at, "the ExternalAuth filter is in Gateway API's experimental channel from v1.4, and this cluster has %s; without it the host would be open to anyone (say gatewayAPI: {version: \"v1.4\", channel: \"experimental\"} if the cluster serves it, or use the contour provider)", g)
		case !g.Supports("HTTPRouteExternalAuth"):
			return in.fail(at, "the cluster's Gateway API controller does not list HTTPRouteExternalAuth in gatewayAPI.features; without the check the host would be open to anyone")
		case a.TLS:
			return in.fail(at+".tls", "gateway-api would need a BackendTLSPolicy for the authorization server, which meshcd does not render for it; without it the check would go in plain text")
		case len(h.delegate) > 0:
			return in.fail(at, "gateway-api checks requests per route, and the routes claimed under %s are other designs' HTTPRoutes, which would go unchecked; use the contour provider, which checks the whole host", delegatedPrefixes(h))
		}
		if a.FailOpen {
			out.warn("ingress %s: extAuth.failOpen: Gateway API's ExternalAuth filter has no fail-open; requests are refused while the server cannot answer", h.host)
		}
		if a.Timeout != nil {
			out.warn("ingress %s: extAuth.timeout: Gateway API's ExternalAuth filter has no timeout; the controller's default applies", h.host)
		}
	}
	return nil
}

// gatewayClientValidation is the Gateway's frontend TLS validation for hosts that check client
// certificates: Gateway-wide, so every TLS host of the design's Gateway must ask for the same
// CA; from Gateway API v1.5 (or v1.4's experimental channel). A Secret as the CA is
// implementation-specific (a ConfigMap is the core kind), said in a warning; a controller that
// refuses it marks the Gateway, which health then reports.
func gatewayClientValidation(in *compileInput, hosts []ingressHost, out *output) (map[string]any, error) {
	var ca *schema.ClientCA
	var first string
	for _, h := range hosts {
		if !h.owned || h.tls == nil {
			continue
		}
		at := fmt.Sprintf("ingress.hosts.%q.tls.clientCA", h.host)
		switch {
		case first == "":
			first, ca = h.host, h.tls.ClientCA
		case (ca == nil) != (h.tls.ClientCA == nil) || (ca != nil && *ca != *h.tls.ClientCA):
			return nil, in.fail(at, "gateway-api checks client certificates for the whole Gateway, and %s asks differently; give the design's TLS hosts one clientCA, or use the contour or istio provider", first)
		}
	}
	if ca == nil {
		return nil, nil
	}
	g := in.cluster.GatewayAPI
	at := fmt.Sprintf("ingress.hosts.%q.tls.clientCA", first)
	switch {
	case g.Minor() < 4 || (g.Minor() == 4 && !g.Experimental()):
		return nil, in.fail(at, "client certificate validation is in Gateway API from v1.5 (v1.4's experimental channel), and this cluster has %s; without it any client would be let in", g)
	case !g.Supports("GatewayFrontendClientCertificateValidation"):
		return nil, in.fail(at, "the cluster's Gateway API controller does not list GatewayFrontendClientCertificateValidation in gatewayAPI.features; without it any client would be let in")
	case ca.Optional:
		return nil, in.fail(at+".optional", "gateway-api lets clients without a certificate in only through an experimental fallback meshcd does not render; refusing rather than turning every client away or letting bad ones in")
	}
	out.warn("ingress %s: tls.clientCA: Gateway API's core CA reference is a ConfigMap; a Secret is up to the controller, and the Gateway's status says whether it took it", first)
	return map[string]any{"default": map[string]any{"validation": map[string]any{
		"caCertificateRefs": []any{map[string]any{"group": "", "kind": "Secret", "name": ca.Secret}},
	}}}, nil
}
