package render

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/format"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Imported is a design section made from existing ingress objects, with what could not be
// carried over exactly.
type Imported struct {
	Namespace string
	// Services are the backends the ingress objects named, with their ports.
	Services map[string]int64
	// Hosts maps each FQDN to its TLS secret ("" for none) and routes.
	Hosts    map[string]*importedHost
	Warnings []string
}

type importedHost struct {
	TLS    string
	Routes []importedRoute
}

type importedRoute struct {
	Prefix   string
	Backends []importedBackend
	// The rest is what an HTTPProxy route may also say, in the design's words (nil: unset).
	Headers, Query                  map[string]any
	Method, Timeout                 string
	Retries, Redirect, Rewrite      map[string]any
	RequestHeaders, ResponseHeaders map[string]any
}

type importedBackend struct {
	Service string
	Weight  int64
}

// ImportIngress reads Kubernetes Ingress (networking.k8s.io/v1), Contour HTTPProxy and Contour's
// deprecated IngressRoute objects of one namespace into a design section. It never talks to a cluster.
func ImportIngress(objs []*unstructured.Unstructured) (*Imported, error) {
	imp := &Imported{Services: map[string]int64{}, Hosts: map[string]*importedHost{}}
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		if imp.Namespace != "" && imp.Namespace != ns {
			return nil, fmt.Errorf("%s is in namespace %s, the others in %s: import one namespace at a time", ObjectID(o), ns, imp.Namespace)
		}
		imp.Namespace = ns
		var err error
		switch gvk := o.GroupVersionKind(); {
		case gvk.Group == "networking.k8s.io" && gvk.Kind == "Ingress":
			err = imp.addIngress(o)
		case gvk.Group == "projectcontour.io" && gvk.Kind == "HTTPProxy":
			err = imp.addHTTPProxy(o)
		case gvk.Group == "contour.heptio.com" && gvk.Kind == "IngressRoute":
			err = imp.addHTTPProxy(ingressRouteAsProxy(o, &imp.Warnings))
		default:
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: not an Ingress or HTTPProxy; skipped", ObjectID(o)))
		}
		if err != nil {
			return nil, err
		}
	}
	if len(imp.Hosts) == 0 {
		return nil, fmt.Errorf("no Ingress or HTTPProxy with hosts found")
	}
	return imp, nil
}

func (imp *Imported) host(name string) *importedHost {
	h, ok := imp.Hosts[name]
	if !ok {
		h = &importedHost{}
		imp.Hosts[name] = h
	}
	return h
}

func (imp *Imported) addIngress(o *unstructured.Unstructured) error {
	id := ObjectID(o)
	tlsByHost := map[string]string{}
	tls, _, _ := unstructured.NestedSlice(o.Object, "spec", "tls")
	for _, t := range tls {
		tm, _ := t.(map[string]any)
		secret, _ := tm["secretName"].(string)
		hosts, _ := tm["hosts"].([]any)
		for _, h := range hosts {
			if hs, ok := h.(string); ok {
				tlsByHost[hs] = secret
			}
		}
	}
	rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
	for i, r := range rules {
		rm, _ := r.(map[string]any)
		hostName, _ := rm["host"].(string)
		if hostName == "" {
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: rule %d has no host; a design's ingress names its hosts, so it is skipped", id, i))
			continue
		}
		h := imp.host(hostName)
		if s := tlsByHost[hostName]; s != "" {
			h.TLS = s
		}
		paths, _, _ := unstructured.NestedSlice(rm, "http", "paths")
		for _, p := range paths {
			pm, _ := p.(map[string]any)
			path, _ := pm["path"].(string)
			if path == "" {
				path = "/"
			}
			if pt, _ := pm["pathType"].(string); pt != "Prefix" {
				imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: path %s on %s has pathType %s; imported as a prefix", id, path, hostName, pt))
			}
			svc, _, _ := unstructured.NestedString(pm, "backend", "service", "name")
			if svc == "" {
				return fmt.Errorf("%s: path %s on %s has no service backend", id, path, hostName)
			}
			imp.addService(id, svc, pm["backend"].(map[string]any)["service"].(map[string]any)["port"])
			h.Routes = append(h.Routes, importedRoute{Prefix: path, Backends: []importedBackend{{Service: svc, Weight: 100}}})
		}
	}
	return nil
}

func (imp *Imported) addService(id, svc string, port any) {
	pm, _ := port.(map[string]any)
	var n int64
	switch v := pm["number"].(type) {
	case int64:
		n = v
	case float64:
		n = int64(v)
	}
	if n == 0 {
		name, _ := pm["name"].(string)
		imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: service %s is reached by port name %q; write its number into the design (80 assumed)", id, svc, name))
		n = 80
	}
	imp.Services[svc] = n
}

func (imp *Imported) addHTTPProxy(o *unstructured.Unstructured) error {
	id := ObjectID(o)
	fqdn, _, _ := unstructured.NestedString(o.Object, "spec", "virtualhost", "fqdn")
	if fqdn == "" {
		imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: an HTTPProxy without virtualhost is included by another; import the root", id))
		return nil
	}
	h := imp.host(fqdn)
	h.TLS, _, _ = unstructured.NestedString(o.Object, "spec", "virtualhost", "tls", "secretName")
	if inc, _, _ := unstructured.NestedSlice(o.Object, "spec", "includes"); len(inc) > 0 {
		imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: includes become delegations; add them under delegate and import the included proxies into their teams' designs", id))
	}
	routes, _, _ := unstructured.NestedSlice(o.Object, "spec", "routes")
	for i, r := range routes {
		rm, _ := r.(map[string]any)
		where := fmt.Sprintf("%s: route %d", id, i)
		ir := importedRoute{Prefix: "/"}
		conds, _ := rm["conditions"].([]any)
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if p, ok := cm["prefix"].(string); ok {
				ir.Prefix = p
				continue
			}
			if qm, ok := cm["queryParameter"].(map[string]any); ok {
				name, _ := qm["name"].(string)
				if exact, ok := qm["exact"].(string); ok && name != "" && len(qm) == 2 {
					if ir.Query == nil {
						ir.Query = map[string]any{}
					}
					ir.Query[name] = exact
					continue
				}
			}
			hm, _ := cm["header"].(map[string]any)
			name, _ := hm["name"].(string)
			if exact, ok := hm["exact"].(string); ok && name == ":method" && len(hm) == 2 {
				ir.Method = exact
				continue
			}
			if exact, ok := hm["exact"].(string); ok && name != "" && len(hm) == 2 {
				if ir.Headers == nil {
					ir.Headers = map[string]any{}
				}
				ir.Headers[name] = exact
				continue
			}
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: condition %v is not imported (a design matches a path prefix, exact headers, the method and exact query parameters)", where, cm))
		}
		imp.importRoutePolicies(where, rm, &ir)
		prefix := ir.Prefix
		services, _ := rm["services"].([]any)
		var backends []importedBackend
		var total int64
		for _, s := range services {
			sm, _ := s.(map[string]any)
			name, _ := sm["name"].(string)
			imp.addService(id, name, map[string]any{"number": sm["port"]})
			w := asInt(sm["weight"])
			backends = append(backends, importedBackend{Service: name, Weight: w})
			total += w
		}
		// Contour splits evenly when no weights are given.
		if total == 0 && len(backends) > 0 {
			for i := range backends {
				backends[i].Weight = 100 / int64(len(backends))
			}
			backends[0].Weight += 100 - 100/int64(len(backends))*int64(len(backends))
		}
		ir.Prefix, ir.Backends = prefix, backends
		h.Routes = append(h.Routes, ir)
	}
	return nil
}

// httpProxyRouteKeys are the fields of an HTTPProxy route the import reads; any other is
// named in a warning, never dropped without a word.
var httpProxyRouteKeys = map[string]bool{"conditions": true, "services": true, "timeoutPolicy": true, "retryPolicy": true,
	"requestHeadersPolicy": true, "responseHeadersPolicy": true, "requestRedirectPolicy": true, "pathRewritePolicy": true}

// retryConditions are the retryOn values a design can say.
var retryConditions = map[string]bool{"5xx": true, "gateway-error": true, "reset": true, "connect-failure": true, "retriable-4xx": true,
	"refused-stream": true, "unavailable": true, "cancelled": true, "deadline-exceeded": true}

// importRoutePolicies carries an HTTPProxy route's timeout, retries, header policies, redirect
// and prefix rewrite into the design's words, and warns about each part it cannot say.
func (imp *Imported) importRoutePolicies(where string, rm map[string]any, ir *importedRoute) {
	warn := func(format string, args ...any) {
		imp.Warnings = append(imp.Warnings, where+": "+fmt.Sprintf(format, args...))
	}
	for _, k := range slices.Sorted(maps.Keys(rm)) {
		if !httpProxyRouteKeys[k] {
			warn("%s is not imported: a design cannot say it yet", k)
		}
	}
	if tp, ok := rm["timeoutPolicy"].(map[string]any); ok {
		if v, ok := tp["response"].(string); ok && v != "infinity" {
			ir.Timeout = v
		}
		for _, k := range slices.Sorted(maps.Keys(tp)) {
			if k != "response" {
				warn("timeoutPolicy.%s is not imported (a design sets the response timeout)", k)
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

// asInt reads a number however the YAML decoder typed it.
func asInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	return 0
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

// CUE prints the imported section as a design named name, ready for designs/<name>/design.cue.
func (imp *Imported) CUE(name string) ([]byte, error) {
	services := map[string]any{}
	for svc, port := range imp.Services {
		services[svc] = map[string]any{"port": port}
	}
	hosts := map[string]any{}
	for _, hn := range slices.Sorted(maps.Keys(imp.Hosts)) {
		h := imp.Hosts[hn]
		// Longest prefix first, as ingress controllers match.
		routes := slices.Clone(h.Routes)
		slices.SortStableFunc(routes, func(a, b importedRoute) int { return len(b.Prefix) - len(a.Prefix) })
		var rs []any
		for _, r := range routes {
			var bs []any
			for _, b := range r.Backends {
				bs = append(bs, map[string]any{"service": b.Service, "weight": b.Weight})
			}
			route := map[string]any{"prefix": r.Prefix}
			if len(bs) > 0 {
				route["backends"] = bs
			}
			if r.Method != "" {
				route["method"] = r.Method
			}
			for k, v := range map[string]map[string]any{"headers": r.Headers, "query": r.Query, "retries": r.Retries, "redirect": r.Redirect,
				"rewrite": r.Rewrite, "requestHeaders": r.RequestHeaders, "responseHeaders": r.ResponseHeaders} {
				if v != nil {
					route[k] = v
				}
			}
			if r.Timeout != "" {
				route["timeout"] = r.Timeout
			}
			rs = append(rs, route)
		}
		vh := map[string]any{"routes": rs}
		if h.TLS != "" {
			vh["tls"] = map[string]any{"secret": h.TLS}
		}
		hosts[hn] = vh
	}
	design := map[string]any{"design": map[string]any{name: map[string]any{
		"namespace": imp.Namespace,
		"targets":   map[string]any{},
		"services":  services,
		"ingress":   map[string]any{"hosts": hosts},
	}}}
	v := cuecontext.New().Encode(design)
	if err := v.Err(); err != nil {
		return nil, err
	}
	node := v.Syntax()
	if st, ok := node.(*ast.StructLit); ok {
		node = &ast.File{Decls: st.Elts} // a file's fields, without the braces of a literal
	}
	src, err := format.Node(node, format.Simplify())
	if err != nil {
		return nil, err
	}
	if len(src) > 0 && src[len(src)-1] != '\n' {
		src = append(src, '\n')
	}
	header := "// Imported by meshcd import ingress. Review the warnings it printed, then set targets.\n"
	return append([]byte(header), src...), nil
}
