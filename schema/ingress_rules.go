package schema

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// pathRE is what Gateway API's HTTPRoute schema allows in a path (RFC 3986's path characters),
// which every provider can match: no query, fragment, space or unescaped percent.
var pathRE = regexp.MustCompile(`^/(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*$`)

// checkPrefix refuses a path prefix that does not start with / or has characters a provider
// refuses.
func checkPrefix(prefix string, p fieldPath) []ruleIssue {
	switch {
	case !strings.HasPrefix(prefix, "/"):
		return []ruleIssue{{p, fmt.Sprintf("prefix %q must start with /", prefix)}}
	case !pathRE.MatchString(prefix):
		return []ruleIssue{{p, fmt.Sprintf("prefix %q has characters a path cannot match (a query, fragment, space or bare %%); Gateway API refuses it and Contour and Istio would never match it", prefix)}}
	case strings.Contains(prefix, "//"):
		return []ruleIssue{{p, fmt.Sprintf("prefix %q has an empty segment (//), which clients' paths are normalised out of", prefix)}}
	}
	return nil
}

// checkValueMatch checks a header's or a query parameter's match: exactly one way, and a
// regular expression that compiles.
func checkValueMatch(m HeaderMatch, ways string, p fieldPath) []ruleIssue {
	var out []ruleIssue
	n := 0
	for _, set := range []bool{m.Exact != nil, m.Prefix != "", m.Regex != "", m.Present, m.Absent} {
		if set {
			n++
		}
	}
	if n != 1 {
		out = append(out, ruleIssue{p, "say exactly one of " + ways})
	}
	if m.Regex != "" {
		if _, err := regexp.Compile(m.Regex); err != nil {
			out = append(out, ruleIssue{p.child("regex"), fmt.Sprintf("invalid regular expression: %v", err)})
		}
	}
	return out
}

// checkPathText checks a path the design gives in full (an exact match, a rewritten path).
func checkPathText(path, name string, p fieldPath) []ruleIssue {
	switch {
	case !strings.HasPrefix(path, "/"):
		return []ruleIssue{{p, fmt.Sprintf("%s %q must start with /", name, path)}}
	case !pathRE.MatchString(path):
		return []ruleIssue{{p, fmt.Sprintf("%s %q has characters a path cannot have (a query, fragment, space or bare %%)", name, path)}}
	}
	return nil
}

// checkPathRegex checks a path regular expression: RE2, and starting with a slash (Contour
// refuses any other), so that every provider reads the same expression.
func checkPathRegex(re string, p fieldPath) []ruleIssue {
	if _, err := regexp.Compile(re); err != nil {
		return []ruleIssue{{p, fmt.Sprintf("invalid regular expression: %v", err)}}
	}
	if !strings.HasPrefix(re, "/") {
		return []ruleIssue{{p, fmt.Sprintf("regex %q must start with / (it matches the whole path, and Contour refuses any other)", re)}}
	}
	return nil
}

// routeKey identifies what a route matches: its path, method, header and query conditions.
func routeKey(r IngressRoute) string {
	k := r.MatchText() + "\x00" + r.Method
	for _, h := range slices.Sorted(maps.Keys(r.Headers)) {
		k += "\x00" + strings.ToLower(h) + "=" + r.Headers[h].String()
	}
	for _, q := range slices.Sorted(maps.Keys(r.Query)) {
		k += "\x00?" + q + "=" + r.Query[q].String()
	}
	return k
}

// originRE is a browser origin: scheme, host and maybe a port, nothing after it.
var originRE = regexp.MustCompile(`^https?://(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$`)

var fqdnRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z][-a-z0-9]*[a-z0-9]$`)

func checkFQDN(host string, p fieldPath) []ruleIssue {
	if len(host) > 253 || !fqdnRE.MatchString(host) {
		return []ruleIssue{{p, fmt.Sprintf("%q is not a fully qualified domain name (lower case, dot-separated labels, like shop.example.com)", host)}}
	}
	return nil
}

// checkIngress checks one design's ingress section on its own.
func checkIngress(d *Design) []ruleIssue {
	in := d.Ingress
	if in == nil {
		return nil
	}
	var out []ruleIssue
	add := func(p fieldPath, format string, args ...any) {
		out = append(out, ruleIssue{p, fmt.Sprintf(format, args...)})
	}
	for _, host := range slices.Sorted(maps.Keys(in.Hosts)) {
		vh := in.Hosts[host]
		hp := fieldPath{"ingress", "hosts", host}
		out = append(out, checkFQDN(host, hp)...)
		out = append(out, checkRoutes(d, vh.Routes, hp)...)
		for i, r := range vh.Routes {
			rp := hp.child("routes", strconv.Itoa(i))
			kind, path := r.PathMatch()
			for j, del := range vh.Delegate {
				switch kind {
				case PathRegex:
					if mayMatchUnder(path, del.Prefix) {
						add(rp.child("regex"), "regex %s may match paths under %s, which is delegated to namespace %s (delegate[%d]): a regular expression is tried before every prefix, so it would take that team's requests; start it with a literal path outside %s", path, del.Prefix, del.Namespace, j, del.Prefix)
					}
				case PathExact:
					if underPrefix(path, del.Prefix) {
						add(rp.child("exact"), "%s is delegated to namespace %s (delegate[%d]): this route would take a path of that team's; route it there or delegate a narrower prefix", path, del.Namespace, j)
					}
				default:
					if underPrefix(path, del.Prefix) {
						add(rp.child("prefix"), "%s is delegated to namespace %s (delegate[%d]): this route and that team's would compete for it, and each provider picks differently; route it there or delegate a narrower prefix", path, del.Namespace, j)
					}
				}
			}
		}
		out = append(out, checkIPAccess(vh.Access, hp.child("access"))...)
		if pt := vh.Passthrough; pt != nil {
			for _, f := range []struct {
				name string
				set  bool
			}{{"tls", vh.TLS != nil}, {"routes", len(vh.Routes) > 0}, {"cors", vh.CORS != nil}, {"rateLimit", vh.RateLimit != nil}, {"jwt", vh.JWT != nil},
				{"access", vh.Access != nil}, {"extAuth", vh.ExtAuth != nil}, {"delegate", len(vh.Delegate) > 0}} {
				if f.set {
					add(hp.child(f.name), "a passthrough host's connections go to its backends unopened: the proxy never sees the HTTP that %s acts on", f.name)
				}
			}
			pp := hp.child("passthrough", "backends")
			if len(pt.Backends) == 0 {
				add(pp, "name the services that terminate the host's TLS")
			}
			sum := 0
			for i, b := range pt.Backends {
				sum += b.Weight
				bp := pp.child(strconv.Itoa(i))
				if b.External != nil || b.Service == "" {
					add(bp, "a passthrough backend is one of the design's services")
					continue
				}
				if svc, ok := d.Services[b.Service]; !ok {
					add(bp.child("service"), "service %q is not declared in services", b.Service)
				} else if _, ok := svc.Versions[b.Version]; b.Version != "" && !ok {
					add(bp.child("version"), "version %q is not declared in services.%s.versions", b.Version, b.Service)
				}
			}
			if len(pt.Backends) > 0 && sum != 100 {
				add(pp, "weights sum to %d, want 100", sum)
			}
		}
		for i, r := range vh.Routes {
			if _, why := CombineIPAccess(vh.Access, r.Access); why != "" && checkIPAccess(vh.Access, nil) == nil && checkIPAccess(r.Access, nil) == nil {
				add(hp.child("routes", strconv.Itoa(i), "access"), "%s", why)
			}
		}
		out = append(out, checkTokenFrom(vh.JWT, hp.child("jwt", "from"))...)
		if vh.JWT != nil && vh.TLS == nil {
			add(hp.child("jwt"), "a host that requires tokens needs tls: a token sent over plain HTTP can be read and replayed (and Contour refuses it)")
		}
		for i, r := range vh.Routes {
			if r.JWT != nil && vh.JWT == nil {
				add(hp.child("routes", strconv.Itoa(i), "jwt"), "jwt: false opens a route of a host that requires tokens, and this host requires none")
			}
			if r.ExtAuth != nil && vh.ExtAuth == nil {
				add(hp.child("routes", strconv.Itoa(i), "extAuth"), "extAuth: false leaves a route unchecked by the host's authorization server, and this host has none")
			}
		}
		if vh.ExtAuth != nil {
			if vh.TLS == nil {
				add(hp.child("extAuth"), "a host checked by an authorization server needs tls: the credentials it checks would cross the network in plain text (and Contour refuses it)")
			}
			out = append(out, checkDurationPositive(vh.ExtAuth.Timeout, hp.child("extAuth", "timeout"))...)
			if a := vh.ExtAuth; (a.Provider != "") == (a.Service != "" || a.Port != 0) || (a.Service != "") != (a.Port != 0) {
				add(hp.child("extAuth"), "say service and port (a Service of the design's, for Contour and Gateway API) or provider (an extension provider of the cluster's Istio), one of the two")
			}
		}
		if c := vh.CORS; c != nil {
			cp := hp.child("cors")
			if len(c.AllowOrigins) == 0 {
				add(cp.child("allowOrigins"), "name at least one origin (or \"*\")")
			}
			if len(c.AllowMethods) == 0 {
				add(cp.child("allowMethods"), "name at least one method")
			}
			for i, o := range c.AllowOrigins {
				switch {
				case o == "*" && c.AllowCredentials:
					add(cp.child("allowOrigins", strconv.Itoa(i)), "browsers refuse credentials with the origin \"*\": name the origins, or set allowCredentials: false")
				case o != "*" && !originRE.MatchString(o):
					add(cp.child("allowOrigins", strconv.Itoa(i)), "%q is not an origin (scheme://host[:port], like https://app.example.com)", o)
				}
			}
		}
		seen := map[string]bool{}
		delegatedTo := map[string]int{}
		for i, del := range vh.Delegate {
			dp := hp.child("delegate", strconv.Itoa(i))
			out = append(out, checkPrefix(del.Prefix, dp.child("prefix"))...)
			if j, dup := delegatedTo[del.Namespace]; dup {
				add(dp.child("namespace"), "namespace %s already gets %s on this host (delegate[%d]): a namespace serves one prefix per host (its proxy and routes are named by the host); delegate the shorter prefix only, and let its team route below it", del.Namespace, vh.Delegate[j].Prefix, j)
			} else {
				delegatedTo[del.Namespace] = i
			}
			if seen[del.Prefix] {
				add(dp.child("prefix"), "prefix %q is delegated twice", del.Prefix)
			}
			seen[del.Prefix] = true
			if del.Namespace == d.Namespace {
				add(dp.child("namespace"), "the design's own namespace needs no delegation; write the routes under hosts")
			}
		}
	}
	claimedHost := map[string]int{}
	for i, c := range in.Claims {
		cp := fieldPath{"ingress", "claims", strconv.Itoa(i)}
		out = append(out, checkFQDN(c.Host, cp.child("host"))...)
		if j, dup := claimedHost[c.Host]; dup {
			add(cp.child("host"), "claims[%d] already claims %s: a design claims a host once (its proxy and routes are named by the host); put these routes under that claim, with longer prefixes", j, c.Host)
		} else {
			claimedHost[c.Host] = i
		}
		out = append(out, checkPrefix(c.Prefix, cp.child("prefix"))...)
		out = append(out, checkRoutes(d, c.Routes, cp)...)
		for j, r := range c.Routes {
			if r.GRPC != nil {
				add(cp.child("routes", strconv.Itoa(j), "grpc"), "a claimed route sits under %s, and gRPC clients call /<service>/<method> at the host's root; ask the host's owner to route the service", c.Prefix)
			}
		}
	}
	for i, t := range in.TLSDelegations {
		if len(t.To) == 0 {
			add(fieldPath{"ingress", "tlsDelegations", strconv.Itoa(i), "to"}, "name the namespaces that may use secret %q", t.Secret)
		}
	}
	return out
}

// checkRoutes checks a host's or a claim's routes one by one, and that no two match the same.
func checkRoutes(d *Design, routes []IngressRoute, p fieldPath) []ruleIssue {
	var out []ruleIssue
	routeAt := map[string]int{}
	for i, r := range routes {
		rp := p.child("routes", strconv.Itoa(i))
		out = append(out, checkIngressRoute(d, r, rp)...)
		if j, dup := routeAt[routeKey(r)]; dup {
			field := map[PathKind]string{PathPrefix: "prefix", PathExact: "exact", PathRegex: "regex"}[r.kindOf()]
			out = append(out, ruleIssue{rp.child(field), fmt.Sprintf("routes[%d] already matches %s with the same method, headers and query; providers keep different ones of the two", j, r.MatchText())})
		} else {
			routeAt[routeKey(r)] = i
		}
	}
	return out
}

func checkIngressRoute(d *Design, r IngressRoute, p fieldPath) []ruleIssue {
	var out []ruleIssue
	add := func(p fieldPath, format string, args ...any) {
		out = append(out, ruleIssue{p, fmt.Sprintf(format, args...)})
	}
	out = append(out, checkPrefix(r.Prefix, p.child("prefix"))...)
	out = append(out, checkIPAccess(r.Access, p.child("access"))...)
	var said []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"prefix", r.Prefix != "/"}, {"exact", r.Exact != ""}, {"regex", r.Regex != ""}, {"grpc", r.GRPC != nil}} {
		if f.set {
			said = append(said, f.name)
		}
	}
	if len(said) > 1 {
		add(p.child(said[1]), "a route matches its path one way: say one of prefix, exact, regex or grpc, not %s", strings.Join(said, " and "))
	}
	if r.Exact != "" {
		out = append(out, checkPathText(r.Exact, "exact", p.child("exact"))...)
	}
	if r.Regex != "" {
		out = append(out, checkPathRegex(r.Regex, p.child("regex"))...)
	}
	kind, _ := r.PathMatch()
	if r.GRPC != nil {
		if r.Method != "" {
			add(p.child("method"), "a gRPC call is always a POST; match it by grpc.service and grpc.method")
		}
	}
	for _, h := range slices.Sorted(maps.Keys(r.Headers)) {
		out = append(out, checkValueMatch(r.Headers[h], "exact, prefix, regex, present or absent", p.child("headers", h))...)
	}
	for _, q := range slices.Sorted(maps.Keys(r.Query)) {
		out = append(out, checkValueMatch(r.Query[q], "exact, prefix, regex or present", p.child("query", q))...)
	}
	if r.Timeout != nil && r.Timeout.Seconds() == 0 {
		add(p.child("timeout"), "a timeout of 0s means no timeout to Istio and Gateway API but is refused or the default elsewhere; leave timeout out for the provider's default, or give a positive duration")
	}
	for _, hp := range []struct {
		name string
		h    *HeaderPolicy
	}{{"requestHeaders", r.RequestHeaders}, {"responseHeaders", r.ResponseHeaders}} {
		seen := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(hp.h.set())) {
			if prev, ok := seen[strings.ToLower(k)]; ok {
				add(p.child(hp.name, "set", k), "header names are case-insensitive: %s and %s are one header set twice", prev, k)
			}
			seen[strings.ToLower(k)] = k
			if hp.name == "requestHeaders" && strings.EqualFold(k, "host") {
				for _, b := range r.Backends {
					if b.External != nil {
						add(p.child(hp.name, "set", k), "a route to the external upstream %s already sends Host: %s; it cannot send another", b.External.Host, b.External.Host)
						break
					}
				}
			}
		}
	}
	targets := 0
	for _, set := range []bool{len(r.Backends) > 0, r.Redirect != nil, r.Respond != nil} {
		if set {
			targets++
		}
	}
	switch {
	case targets == 0:
		add(p, "a route needs backends, a redirect or a respond")
	case targets > 1:
		add(p, "a route either redirects, answers itself (respond) or has backends, one of the three")
	}
	if r.Respond != nil {
		for _, f := range []struct {
			name string
			set  bool
		}{{"rewrite", r.Rewrite != nil}, {"retries", r.Retries != nil}, {"timeout", r.Timeout != nil}, {"websockets", r.WebSockets}, {"healthCheck", r.HealthCheck != nil}, {"requestHeaders", r.RequestHeaders != nil}} {
			if f.set {
				add(p.child(f.name), "a route that answers itself (respond) sends nothing upstream; %s has nothing to act on", f.name)
			}
		}
	}
	if r.Retries != nil {
		out = append(out, checkRetries(r.Retries, r.Timeout, p.child("retries"))...)
	}
	out = append(out, checkDurationPositive(r.IdleTimeout, p.child("idleTimeout"))...)
	if hc := r.HealthCheck; hc != nil {
		hp := p.child("healthCheck")
		for _, d := range []struct {
			name string
			d    Duration
		}{{"interval", hc.Interval}, {"timeout", hc.Timeout}} {
			if d.d.Duration <= 0 || d.d.Duration%time.Second != 0 {
				add(hp.child(d.name), "%s %s must be a whole number of seconds (Contour counts health checks in seconds)", d.name, d.d.Text)
			}
		}
		if hc.Timeout.Duration > hc.Interval.Duration {
			add(hp.child("timeout"), "a check that may take %s cannot run every %s", hc.Timeout.Text, hc.Interval.Text)
		}
		if len(r.Backends) > 0 && r.Backends[0].External != nil {
			add(hp, "an upstream outside the cluster is not probed by the edge; health checks are for the cluster's services")
		}
	}
	if rd := r.Redirect; rd != nil {
		if rd.Path != "" && rd.Prefix != "" {
			add(p.child("redirect"), "say path (the whole path) or prefix (the matched prefix), not both")
		}
		if rd.Prefix != "" && kind != PathPrefix {
			add(p.child("redirect", "prefix"), "the route matches %s, not a prefix, so there is no matched prefix to replace; say redirect.path for the whole path", r.MatchText())
		}
		for _, f := range [][2]string{{"path", rd.Path}, {"prefix", rd.Prefix}} {
			if f[1] != "" && !strings.HasPrefix(f[1], "/") {
				add(p.child("redirect", f[0]), "%s %q must start with /", f[0], f[1])
			}
		}
	}
	if r.WebSockets && r.Redirect != nil {
		add(p.child("websockets"), "a route that redirects serves no WebSocket")
	}
	if rw := r.Rewrite; rw != nil {
		rp := p.child("rewrite")
		if r.Redirect != nil {
			add(rp, "a route that redirects sends nothing upstream to rewrite; put the path in redirect.path")
		}
		if rw.Prefix != "" && !strings.HasPrefix(rw.Prefix, "/") {
			add(rp.child("prefix"), "prefix %q must start with /", rw.Prefix)
		}
		n := 0
		for _, set := range []bool{rw.Prefix != "", rw.Path != "", rw.Regex != nil} {
			if set {
				n++
			}
		}
		if n > 1 {
			add(rp, "say one of prefix (the matched prefix), path (the whole path) or regex, not more")
		}
		if rw.Prefix != "" && kind != PathPrefix {
			add(rp.child("prefix"), "the route matches %s, not a prefix, so there is no matched prefix to replace; say rewrite.path for the whole path", r.MatchText())
		}
		if rw.Path != "" {
			out = append(out, checkPathText(rw.Path, "path", rp.child("path"))...)
		}
		if rx := rw.Regex; rx != nil {
			if _, err := regexp.Compile(rx.Match); err != nil {
				add(rp.child("regex", "match"), "invalid regular expression: %v", err)
			}
		}
		if rw.Host != "" {
			out = append(out, checkFQDN(rw.Host, rp.child("host"))...)
			for _, b := range r.Backends {
				if b.External != nil {
					add(rp.child("host"), "a route to the external upstream %s already sends Host: %s; it cannot send another", b.External.Host, b.External.Host)
					break
				}
			}
			for _, k := range slices.Sorted(maps.Keys(r.RequestHeaders.set())) {
				if strings.EqualFold(k, "host") {
					add(rp.child("host"), "requestHeaders.set also sets %s: say the host once, in rewrite.host", k)
				}
			}
		}
	}
	sum := 0
	for i, b := range r.Backends {
		bp := p.child("backends", strconv.Itoa(i))
		sum += b.Weight
		switch {
		case (b.Service == "") == (b.External == nil):
			add(bp, "a backend is exactly one of service or external")
		case b.External != nil:
			out = append(out, checkFQDN(b.External.Host, bp.child("external", "host"))...)
			if b.Version != "" {
				add(bp.child("version"), "an external backend has no versions")
			}
		default:
			svc, ok := d.Services[b.Service]
			if !ok {
				add(bp.child("service"), "service %q is not declared in services", b.Service)
			} else if _, ok := svc.Versions[b.Version]; b.Version != "" && !ok {
				add(bp.child("version"), "version %q is not declared in services.%s.versions", b.Version, b.Service)
			}
		}
	}
	if len(r.Backends) > 0 && sum != 100 {
		add(p.child("backends"), "weights sum to %d, want 100", sum)
	}
	return out
}

// designIssue is a broken rule that relates several designs, found on one of them.
type designIssue struct {
	design int
	ruleIssue
}

// checkIngressAcross checks what no design can check alone: a host has one owner, a claim
// sits under a prefix its owner delegated to the claiming namespace, no two designs claim the
// same prefix, and a TLS secret from another namespace was delegated by a design there.
func checkIngressAcross(designs []Design) []designIssue {
	var out []designIssue
	owner := map[string]int{} // host -> design index
	for i := range designs {
		if designs[i].Ingress == nil {
			continue
		}
		for _, host := range slices.Sorted(maps.Keys(designs[i].Ingress.Hosts)) {
			if j, taken := owner[host]; taken {
				out = append(out, designIssue{i, ruleIssue{fieldPath{"ingress", "hosts", host},
					fmt.Sprintf("host %s is already owned by design %s; delegate a prefix instead of claiming the host twice", host, designs[j].Name)}})
				continue
			}
			owner[host] = i
		}
	}
	claimed := map[string]int{} // host+prefix -> design index
	for i := range designs {
		d := &designs[i]
		if d.Ingress == nil {
			continue
		}
		for k, c := range d.Ingress.Claims {
			cp := fieldPath{"ingress", "claims", strconv.Itoa(k)}
			key := c.Host + c.Prefix
			if j, taken := claimed[key]; taken {
				out = append(out, designIssue{i, ruleIssue{cp.child("prefix"),
					fmt.Sprintf("prefix %s on host %s is already claimed by design %s", c.Prefix, c.Host, designs[j].Name)}})
				continue
			}
			claimed[key] = i
			j, owned := owner[c.Host]
			if !owned || designs[j].Namespace != c.Owner {
				out = append(out, designIssue{i, ruleIssue{cp.child("owner"),
					fmt.Sprintf("no design in namespace %s owns host %s", c.Owner, c.Host)}})
				continue
			}
			ownerHost := designs[j].Ingress.Hosts[c.Host]
			for r, route := range c.Routes {
				if route.JWT != nil && ownerHost.JWT == nil {
					out = append(out, designIssue{i, ruleIssue{cp.child("routes", strconv.Itoa(r), "jwt"),
						fmt.Sprintf("jwt: false opens a route of a host that requires tokens, and design %s requires none on %s", designs[j].Name, c.Host)}})
				}
				if route.ExtAuth != nil && ownerHost.ExtAuth == nil {
					out = append(out, designIssue{i, ruleIssue{cp.child("routes", strconv.Itoa(r), "extAuth"),
						fmt.Sprintf("extAuth: false leaves a route unchecked by the host's authorization server, and design %s has none on %s", designs[j].Name, c.Host)}})
				}
			}
			if ownerHost.Access != nil {
				for r, route := range c.Routes {
					if route.Access != nil {
						out = append(out, designIssue{i, ruleIssue{cp.child("routes", strconv.Itoa(r), "access"),
							fmt.Sprintf("design %s already admits clients of %s by address, and Contour's route rules replace the host's: a claimed route's own address rule would undo the owner's; ask the owner to narrow the host's rule", designs[j].Name, c.Host)}})
					}
				}
			}
			delegated := false
			for _, del := range designs[j].Ingress.Hosts[c.Host].Delegate {
				if del.Namespace == d.Namespace && underPrefix(c.Prefix, del.Prefix) {
					delegated = true
				}
			}
			if !delegated {
				out = append(out, designIssue{i, ruleIssue{cp.child("prefix"),
					fmt.Sprintf("prefix %s on host %s is not delegated to namespace %s by design %s, which owns the host", c.Prefix, c.Host, d.Namespace, designs[j].Name)}})
			}
		}
		for _, host := range slices.Sorted(maps.Keys(d.Ingress.Hosts)) {
			for k, del := range d.Ingress.Hosts[host].Delegate {
				if !claimedUnder(designs, host, del) {
					out = append(out, designIssue{i, ruleIssue{fieldPath{"ingress", "hosts", host, "delegate", strconv.Itoa(k), "namespace"},
						fmt.Sprintf("no design in namespace %s claims %s on %s: Contour marks the whole host invalid for an include it cannot find, and Gateway API routes nothing there", del.Namespace, del.Prefix, host)}})
				}
			}
			tls := d.Ingress.Hosts[host].TLS
			if tls == nil || tls.Namespace == "" || tls.Namespace == d.Namespace {
				continue
			}
			if !tlsDelegated(designs, tls.Namespace, tls.Secret, d.Namespace) {
				out = append(out, designIssue{i, ruleIssue{fieldPath{"ingress", "hosts", host, "tls"},
					fmt.Sprintf("TLS secret %s/%s is in another namespace and no design there delegates it to namespace %s (tlsDelegations)", tls.Namespace, tls.Secret, d.Namespace)}})
			}
		}
	}
	return out
}

// claimedUnder reports whether a design in the delegated namespace claims the prefix, or a
// path under it, on the host.
func claimedUnder(designs []Design, host string, del Delegation) bool {
	for _, d := range designs {
		if d.Namespace != del.Namespace || d.Ingress == nil {
			continue
		}
		for _, c := range d.Ingress.Claims {
			if c.Host == host && underPrefix(c.Prefix, del.Prefix) {
				return true
			}
		}
	}
	return false
}

func tlsDelegated(designs []Design, ns, secret, to string) bool {
	for _, d := range designs {
		if d.Namespace != ns || d.Ingress == nil {
			continue
		}
		for _, t := range d.Ingress.TLSDelegations {
			if t.Secret == secret && (slices.Contains(t.To, to) || slices.Contains(t.To, "*")) {
				return true
			}
		}
	}
	return false
}

// underPrefix reports whether p is prefix or a path below it (/shop/cart is under /shop, /shopping is not).
func underPrefix(p, prefix string) bool {
	if prefix == "/" || p == prefix {
		return true
	}
	return strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/")
}

// set is the headers a policy sets (none for no policy).
func (h *HeaderPolicy) set() map[string]string {
	if h == nil {
		return nil
	}
	return h.Set
}

// checkIPAccess checks an edge address rule: allow or deny, each entry an address or CIDR.
func checkIPAccess(a *IPAccess, p fieldPath) []ruleIssue {
	if a == nil {
		return nil
	}
	var out []ruleIssue
	switch {
	case len(a.Allow) > 0 && len(a.Deny) > 0:
		out = append(out, ruleIssue{p, "say allow (only these addresses) or deny (all but these), not both: Contour refuses the two together, and what one leaves out the other decides"})
	case len(a.Allow) == 0 && len(a.Deny) == 0:
		out = append(out, ruleIssue{p, "name the addresses to allow or to deny"})
	}
	for _, l := range []struct {
		name   string
		blocks []string
	}{{"allow", a.Allow}, {"deny", a.Deny}} {
		for i, b := range l.blocks {
			if _, err := ParseIPBlock(b); err != nil {
				out = append(out, ruleIssue{p.child(l.name, strconv.Itoa(i)), fmt.Sprintf("%q is not an address or CIDR: %v", b, err)})
			}
		}
	}
	return out
}

// checkTokenFrom checks where a JWT is read from: one header (a prefix only with it) or one
// query parameter.
func checkTokenFrom(j *JWT, p fieldPath) []ruleIssue {
	if j == nil || j.From == nil {
		return nil
	}
	f := j.From
	switch {
	case (f.Header == "") == (f.Query == ""):
		return []ruleIssue{{p, "say header or query, one of the two"}}
	case f.Prefix != "" && f.Header == "":
		return []ruleIssue{{p.child("prefix"), "a prefix is part of a header's value; a query parameter has none"}}
	}
	return nil
}
