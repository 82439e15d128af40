package render

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func (imp *Imported) addHTTPProxy(o *unstructured.Unstructured) error {
	id := ObjectID(o)
	fqdn, _, _ := unstructured.NestedString(o.Object, "spec", "virtualhost", "fqdn")
	if fqdn == "" {
		imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: an HTTPProxy without virtualhost is included by another; import the root", id))
		return nil
	}
	h := imp.host(fqdn)
	imp.warnAnnotations(o)
	spec, _, _ := unstructured.NestedMap(o.Object, "spec")
	for _, k := range slices.Sorted(maps.Keys(spec)) {
		switch k {
		case "virtualhost", "routes", "tcpproxy":
		case "includes":
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: spec.includes become delegations; add them under delegate and import the included proxies into their teams' designs", id))
		default:
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: spec.%s is not imported: a design cannot say it yet", id, k))
		}
	}
	vh, _ := spec["virtualhost"].(map[string]any)
	imp.importVirtualHost(id+": spec.virtualhost", vh, h)
	if tp, ok := spec["tcpproxy"].(map[string]any); ok {
		if passthrough, _, _ := unstructured.NestedBool(vh, "tls", "passthrough"); passthrough {
			services, _ := tp["services"].([]any)
			h.Passthrough = imp.importBackends(id, id+": spec.tcpproxy", services)
			for _, k := range slices.Sorted(maps.Keys(tp)) {
				if k != "services" {
					imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: spec.tcpproxy.%s is not imported: a design cannot say it yet", id, k))
				}
			}
		} else {
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: spec.tcpproxy is not imported: a design proxies TCP only by TLS passthrough", id))
		}
	} else if passthrough, _, _ := unstructured.NestedBool(vh, "tls", "passthrough"); passthrough {
		imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: spec.virtualhost.tls.passthrough is not imported: without spec.tcpproxy it names nowhere to pass connections", id))
	}
	routes, ok := spec["routes"].([]any)
	if !ok && spec["routes"] != nil {
		imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: spec.routes is not imported: not a list of routes", id))
	}
	for i, r := range routes {
		rm, _ := r.(map[string]any)
		where := fmt.Sprintf("%s: spec.routes[%d]", id, i)
		ir := importedRoute{Prefix: "/"}
		conds, _ := rm["conditions"].([]any)
		for j, c := range conds {
			cm, _ := c.(map[string]any)
			if p, ok := cm["prefix"].(string); ok {
				ir.Prefix = p
				continue
			}
			if p, ok := cm["exact"].(string); ok && strings.HasPrefix(p, "/") {
				ir.Exact = p
				continue
			}
			if re, ok := cm["regex"].(string); ok && strings.HasPrefix(re, "/") {
				if _, err := regexp.Compile(re); err == nil {
					ir.Regex = re
					continue
				}
			}
			if qm, ok := cm["queryParameter"].(map[string]any); ok {
				name, _ := qm["name"].(string)
				if m := importValueMatch(qm); m != nil && name != "" && len(qm) == 2 {
					if ir.Query == nil {
						ir.Query = map[string]any{}
					}
					ir.Query[name] = m
					continue
				}
			}
			hm, _ := cm["header"].(map[string]any)
			name, _ := hm["name"].(string)
			if exact, ok := hm["exact"].(string); ok && name == ":method" && len(hm) == 2 {
				ir.Method = exact
				continue
			}
			if m := importValueMatch(hm); m != nil && name != "" && name != ":method" && len(hm) == 2 {
				if ir.Headers == nil {
					ir.Headers = map[string]any{}
				}
				ir.Headers[name] = m
				continue
			}
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s.conditions[%d] %v is not imported (a design matches a path prefix, an exact path or a regex starting with /, headers by exact value, regex, presence or absence, the method, and query parameters by exact value, prefix, regex or presence)", where, j, cm))
		}
		imp.importRoutePolicies(where, rm, &ir)
		prefix := ir.Prefix
		services, _ := rm["services"].([]any)
		ir.Prefix, ir.Backends = prefix, imp.importBackends(id, where, services)
		if j := slices.IndexFunc(h.Routes, func(o importedRoute) bool { return o.key() == ir.key() }); j >= 0 {
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s is not imported: with what it matches as the design says it, it is the same route as %s", where, h.Routes[j].from))
			continue
		}
		ir.from = where
		h.Routes = append(h.Routes, ir)
	}
	return nil
}

// httpProxyRouteKeys are the fields of an HTTPProxy route the import reads; any other is
// named in a warning, never dropped without a word.
var httpProxyRouteKeys = map[string]bool{"conditions": true, "services": true, "timeoutPolicy": true, "retryPolicy": true,
	"requestHeadersPolicy": true, "responseHeadersPolicy": true, "requestRedirectPolicy": true, "pathRewritePolicy": true,
	"rateLimitPolicy": true, "enableWebsockets": true, "ipAllowPolicy": true, "ipDenyPolicy": true, "jwtVerificationPolicy": true,
	"healthCheckPolicy": true, "directResponsePolicy": true}

// retryConditions are the retryOn values a design can say.
var retryConditions = map[string]bool{"5xx": true, "gateway-error": true, "reset": true, "connect-failure": true, "retriable-4xx": true,
	"refused-stream": true, "unavailable": true, "cancelled": true, "deadline-exceeded": true}

// importRoutePolicies carries an HTTPProxy route's timeout, retries, header policies, redirect
// and prefix rewrite into the design's words, and warns about each part it cannot say.
func (imp *Imported) importRoutePolicies(where string, rm map[string]any, ir *importedRoute) {
	warn := func(format string, args ...any) {
		imp.Warnings = append(imp.Warnings, where+"."+fmt.Sprintf(format, args...))
	}
	for _, k := range slices.Sorted(maps.Keys(rm)) {
		switch {
		case k == "authPolicy":
			warn("authPolicy is not imported: the host's authorization server is not either; with extAuth added by hand, say extAuth: false on the routes it leaves unchecked")
		case !httpProxyRouteKeys[k]:
			warn("%s is not imported: a design cannot say it yet", k)
		}
	}
	ir.RateLimit = imp.importRateLimit(where+".rateLimitPolicy", rm["rateLimitPolicy"])
	if dr, ok := rm["directResponsePolicy"].(map[string]any); ok {
		ir.Respond = map[string]any{"status": asInt(dr["statusCode"])}
		if b, _ := dr["body"].(string); b != "" {
			ir.Respond["body"] = b
		}
		for _, k := range slices.Sorted(maps.Keys(dr)) {
			if k != "statusCode" && k != "body" {
				warn("directResponsePolicy.%s is not imported: a design cannot say it yet", k)
			}
		}
	}
	if hp, ok := rm["healthCheckPolicy"].(map[string]any); ok {
		hc := map[string]any{}
		hc["path"], _ = hp["path"].(string)
		for from, to := range map[string]string{"intervalSeconds": "interval", "timeoutSeconds": "timeout"} {
			if n := asInt(hp[from]); n > 0 {
				hc[to] = fmt.Sprintf("%ds", n)
			}
		}
		for from, to := range map[string]string{"unhealthyThresholdCount": "unhealthyThreshold", "healthyThresholdCount": "healthyThreshold"} {
			if n := asInt(hp[from]); n > 0 {
				hc[to] = n
			}
		}
		if h, ok := hp["host"].(string); ok {
			hc["host"] = h
		}
		for _, k := range slices.Sorted(maps.Keys(hp)) {
			switch k {
			case "path", "intervalSeconds", "timeoutSeconds", "unhealthyThresholdCount", "healthyThresholdCount", "host":
			default:
				warn("healthCheckPolicy.%s is not imported: a design cannot say it yet", k)
			}
		}
		ir.HealthCheck = hc
	}
	ir.Access = imp.importIPFilters(where, rm)
	ir.WebSockets, _ = rm["enableWebsockets"].(bool)
	if jv, ok := rm["jwtVerificationPolicy"].(map[string]any); ok {
		ir.NoJWT, _ = jv["disabled"].(bool)
		for _, k := range slices.Sorted(maps.Keys(jv)) {
			if k != "disabled" {
				warn("jwtVerificationPolicy.%s is not imported (a design leaves a route open or requires the host's one token)", k)
			}
		}
	}
	if tp, ok := rm["timeoutPolicy"].(map[string]any); ok {
		if v, ok := tp["response"].(string); ok && v != "infinity" && v != "infinite" {
			ir.Timeout = v
		}
		if v, ok := tp["idle"].(string); ok && v != "infinity" && v != "infinite" {
			ir.IdleTimeout = v
		}
		for _, k := range slices.Sorted(maps.Keys(tp)) {
			if k != "response" && k != "idle" {
				warn("timeoutPolicy.%s is not imported (a design sets the response and idle timeouts)", k)
			}
		}
	}
	if rp, ok := rm["retryPolicy"].(map[string]any); ok {
		retries := map[string]any{"attempts": asInt(rp["count"])}
		if v, ok := rp["perTryTimeout"].(string); ok {
			retries["perTryTimeout"] = v
		}
		if on, ok := rp["retryOn"].([]any); ok {
			var kept []any
			for _, c := range on {
				if s, _ := c.(string); retryConditions[s] {
					kept = append(kept, s)
				} else {
					warn("retryPolicy.retryOn %v is not imported (a design retries on %s)", c, strings.Join(slices.Sorted(maps.Keys(retryConditions)), ", "))
				}
			}
			if len(kept) > 0 {
				retries["on"] = kept
			}
		}
		for _, k := range slices.Sorted(maps.Keys(rp)) {
			if k != "count" && k != "perTryTimeout" && k != "retryOn" {
				warn("retryPolicy.%s is not imported", k)
			}
		}
		ir.Retries = retries
	}
	headerPolicy := func(field string) map[string]any {
		hp, ok := rm[field].(map[string]any)
		if !ok {
			return nil
		}
		out := map[string]any{}
		if set, ok := hp["set"].([]any); ok {
			m := map[string]any{}
			for _, e := range set {
				em, _ := e.(map[string]any)
				name, _ := em["name"].(string)
				value, _ := em["value"].(string)
				if name != "" {
					m[name] = value
				}
			}
			out["set"] = m
		}
		if rem, ok := hp["remove"].([]any); ok {
			out["remove"] = rem
		}
		for _, k := range slices.Sorted(maps.Keys(hp)) {
			if k != "set" && k != "remove" {
				warn("%s.%s is not imported", field, k)
			}
		}
		return out
	}
	ir.RequestHeaders, ir.ResponseHeaders = headerPolicy("requestHeadersPolicy"), headerPolicy("responseHeadersPolicy")
	if rd, ok := rm["requestRedirectPolicy"].(map[string]any); ok {
		redirect := map[string]any{}
		for from, to := range map[string]string{"scheme": "scheme", "hostname": "host", "path": "path"} {
			if v, ok := rd[from].(string); ok {
				redirect[to] = v
			}
		}
		if code := asInt(rd["statusCode"]); code != 0 {
			redirect["status"] = code
		}
		for _, k := range slices.Sorted(maps.Keys(rd)) {
			if k != "scheme" && k != "hostname" && k != "path" && k != "statusCode" {
				warn("requestRedirectPolicy.%s is not imported", k)
			}
		}
		ir.Redirect = redirect
	}
	if pr, ok := rm["pathRewritePolicy"].(map[string]any); ok {
		rp, _ := pr["replacePrefix"].([]any)
		if len(rp) == 1 {
			m, _ := rp[0].(map[string]any)
			replacement, _ := m["replacement"].(string)
			if p, _ := m["prefix"].(string); (p == "" || p == ir.Prefix) && replacement != "" {
				ir.Rewrite = map[string]any{"prefix": replacement}
				return
			}
		}
		warn("pathRewritePolicy %v is not imported (a design replaces the prefix its route matched, once)", pr)
	}
}

// importVirtualHost carries an HTTPProxy virtual host's TLS secret and minimum version, CORS,
// local rate limit, JWT provider and address rules into the design's words, and warns about
// each part it cannot say.
func (imp *Imported) importVirtualHost(where string, vh map[string]any, h *importedHost) {
	warn := func(format string, args ...any) {
		imp.Warnings = append(imp.Warnings, where+"."+fmt.Sprintf(format, args...))
	}
	for _, k := range slices.Sorted(maps.Keys(vh)) {
		switch k {
		case "fqdn", "tls", "corsPolicy", "rateLimitPolicy", "jwtProviders", "ipAllowPolicy", "ipDenyPolicy":
		case "authorization":
			am, _ := vh[k].(map[string]any)
			warn("authorization is not imported: a design names the authorization server by its Service and port, which the ExtensionService %v holds; add extAuth: {service, port} by hand", am["extensionRef"])
		default:
			warn("%s is not imported: a design cannot say it yet", k)
		}
	}
	if tls, ok := vh["tls"].(map[string]any); ok {
		h.TLS, _ = tls["secretName"].(string)

		switch v, _ := tls["minimumProtocolVersion"].(string); v {
		case "1.2", "1.3":
			h.MinTLS = v
		case "":
		default:
			warn("tls.minimumProtocolVersion %q is not imported (a design says 1.2 or 1.3)", v)
		}
		for _, k := range slices.Sorted(maps.Keys(tls)) {
			if k != "secretName" && k != "minimumProtocolVersion" && k != "passthrough" { // passthrough: read with spec.tcpproxy
				warn("tls.%s is not imported: a design cannot say it yet", k)
			}
		}
	}
	if cp, ok := vh["corsPolicy"].(map[string]any); ok {
		cors := map[string]any{}
		for from, to := range map[string]string{"allowOrigin": "allowOrigins", "allowMethods": "allowMethods", "allowHeaders": "allowHeaders", "exposeHeaders": "exposeHeaders"} {
			if l, ok := cp[from].([]any); ok {
				var kept []any
				for i, v := range l {
					if o, _ := v.(string); from == "allowOrigin" && o != "*" && !plainOrigin.MatchString(o) {
						warn("corsPolicy.allowOrigin[%d] %q is not imported: a design names origins exactly (scheme://host[:port]), not by regular expression", i, o)
						continue
					}
					kept = append(kept, v)
				}
				cors[to] = kept
			}
		}
		if v, ok := cp["maxAge"].(string); ok {
			cors["maxAge"] = v
		}
		if v, ok := cp["allowCredentials"].(bool); ok {
			if origins, _ := cors["allowOrigins"].([]any); v && slices.Contains(origins, any("*")) {
				warn("corsPolicy.allowCredentials is not imported: a design refuses credentials for the origin \"*\" (browsers do not send them to it); name the origins to keep them")
			} else {
				cors["allowCredentials"] = v
			}
		}
		for _, k := range slices.Sorted(maps.Keys(cp)) {
			if k != "allowOrigin" && k != "allowMethods" && k != "allowHeaders" && k != "exposeHeaders" && k != "maxAge" && k != "allowCredentials" {
				warn("corsPolicy.%s is not imported: a design cannot say it yet", k)
			}
		}
		h.CORS = cors
	}
	h.RateLimit = imp.importRateLimit(where+".rateLimitPolicy", vh["rateLimitPolicy"])
	h.Access = imp.importIPFilters(where, vh)
	if providers, ok := vh["jwtProviders"].([]any); ok {
		if len(providers) != 1 {
			warn("jwtProviders: %d providers are not imported (a design requires one issuer's tokens on the whole host)", len(providers))
		} else {
			p, _ := providers[0].(map[string]any)
			jwt := map[string]any{}
			jwt["issuer"], _ = p["issuer"].(string)
			jwt["jwksURI"], _, _ = unstructured.NestedString(p, "remoteJWKS", "uri")
			if a, ok := p["audiences"].([]any); ok {
				jwt["audiences"] = a
			}
			if f, _ := p["forwardJWT"].(bool); f {
				jwt["forward"] = true
			}
			if d, _ := p["default"].(bool); !d {
				warn("jwtProviders[0].default is false: a design requires its token on every route unless a route says jwt: false; review the routes it covers")
			}
			for _, k := range slices.Sorted(maps.Keys(p)) {
				if k != "name" && k != "issuer" && k != "remoteJWKS" && k != "audiences" && k != "forwardJWT" && k != "default" {
					warn("jwtProviders[0].%s is not imported: a design cannot say it yet", k)
				}
			}
			if rj, ok := p["remoteJWKS"].(map[string]any); ok {
				for _, k := range slices.Sorted(maps.Keys(rj)) {
					if k != "uri" {
						warn("jwtProviders[0].remoteJWKS.%s is not imported: a design cannot say it yet", k)
					}
				}
			}
			h.JWT = jwt
		}
	}
}

// plainOrigin is an origin written out, not a Contour regular expression.
var plainOrigin = regexp.MustCompile(`^https?://[-a-zA-Z0-9.]+(:[0-9]+)?$`)

// importRateLimit reads a local rate limit; a global one is named in a warning.
func (imp *Imported) importRateLimit(where string, v any) map[string]any {
	rl, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(rl)) {
		if k != "local" {
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s.%s is not imported (a design has local rate limits only)", where, k))
		}
	}
	local, ok := rl["local"].(map[string]any)
	if !ok {
		return nil
	}
	out := map[string]any{"requests": asInt(local["requests"])}
	if u, ok := local["unit"].(string); ok {
		out["unit"] = u
	}
	if b := asInt(local["burst"]); b > 0 {
		out["burst"] = b
	}
	for _, k := range slices.Sorted(maps.Keys(local)) {
		if k != "requests" && k != "unit" && k != "burst" {
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s.local.%s is not imported: a design cannot say it yet", where, k))
		}
	}
	return out
}

// importIPFilters reads a virtual host's or a route's ipAllowPolicy or ipDenyPolicy as an
// address rule.
func (imp *Imported) importIPFilters(where string, m map[string]any) map[string]any {
	for _, key := range []string{"ipAllowPolicy", "ipDenyPolicy"} {
		rules, ok := m[key].([]any)
		if !ok {
			continue
		}
		var blocks []any
		source := ""
		for i, r := range rules {
			rm, _ := r.(map[string]any)
			cidr, _ := rm["cidr"].(string)
			s, _ := rm["source"].(string)
			if source != "" && s != source {
				imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s.%s[%d] is not imported: a design judges one address (peer or forwarded) per rule", where, key, i))
				continue
			}
			source = s
			blocks = append(blocks, cidr)
		}
		out := map[string]any{"source": map[string]string{"Peer": "peer", "Remote": "forwarded"}[source]}
		if key == "ipAllowPolicy" {
			out["allow"] = blocks
		} else {
			out["deny"] = blocks
		}
		return out
	}
	return nil
}

// ingressRouteAsProxy reads Contour's deprecated IngressRoute (contour.heptio.com/v1beta1) as
// the HTTPProxy it was replaced by: a route's match prefix becomes a prefix condition; a
// delegate becomes a warning, like an HTTPProxy include.
func ingressRouteAsProxy(o *unstructured.Unstructured, warnings *[]string) *unstructured.Unstructured {
	c := o.DeepCopy()
	c.SetAPIVersion("projectcontour.io/v1")
	c.SetKind("HTTPProxy")
	routes, _, _ := unstructured.NestedSlice(c.Object, "spec", "routes")
	var kept []any
	for _, r := range routes {
		rm, _ := r.(map[string]any)
		if d, ok := rm["delegate"].(map[string]any); ok {
			*warnings = append(*warnings, fmt.Sprintf("%s: route %v delegates to %v/%v; add it under delegate and import that IngressRoute into its team's design", ObjectID(o), rm["match"], d["namespace"], d["name"]))
			continue
		}
		if m, ok := rm["match"].(string); ok {
			rm["conditions"] = []any{map[string]any{"prefix": m}}
			delete(rm, "match")
		}
		kept = append(kept, rm)
	}
	_ = unstructured.SetNestedSlice(c.Object, kept, "spec", "routes")
	return c
}

// importValueMatch reads an HTTPProxy header or query parameter condition's match (besides its
// name) as a design's match, or nil for one a design cannot say (contains, notexact, suffix,
// ...). Contour matches headers by notpresent and query parameters by prefix, not the other
// way round.
func importValueMatch(m map[string]any) any {
	switch {
	case m["exact"] != nil:
		if v, ok := m["exact"].(string); ok {
			return v
		}
	case m["prefix"] != nil:
		if v, ok := m["prefix"].(string); ok && v != "" {
			return map[string]any{"prefix": v}
		}
	case m["regex"] != nil:
		if v, ok := m["regex"].(string); ok {
			return map[string]any{"regex": v}
		}
	case m["present"] == true:
		return map[string]any{"present": true}
	case m["notpresent"] == true:
		return map[string]any{"absent": true}
	}
	return nil
}

// importBackends reads an HTTPProxy route's or tcpproxy's services as backends, splitting
// evenly when no weights are given, as Contour does, and scaling Contour's relative weights to
// the design's percentages.
func (imp *Imported) importBackends(id, where string, services []any) []importedBackend {
	var backends []importedBackend
	var total int64
	for j, s := range services {
		sm, _ := s.(map[string]any)
		name, _ := sm["name"].(string)
		for _, k := range slices.Sorted(maps.Keys(sm)) {
			if k != "name" && k != "port" && k != "weight" {
				imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s.services[%d].%s is not imported: a design's backend is a service, a port and a weight", where, j, k))
			}
		}
		imp.addService(id, name, map[string]any{"number": sm["port"]})
		w := asInt(sm["weight"])
		backends = append(backends, importedBackend{Service: name, Weight: w})
		total += w
	}
	if len(backends) == 0 || total == 100 {
		return backends
	}
	sum := int64(0)
	for i := range backends {
		if total == 0 {
			backends[i].Weight = 100 / int64(len(backends))
		} else {
			backends[i].Weight = backends[i].Weight * 100 / total
		}
		sum += backends[i].Weight
	}
	backends[0].Weight += 100 - sum
	return backends
}
