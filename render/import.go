package render

import (
	"fmt"
	"maps"
	"slices"

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
	TLS string
	// The rest is what an HTTPProxy virtual host may also say, in the design's words (nil:
	// unset).
	MinTLS                       string
	CORS, RateLimit, JWT, Access map[string]any
	Routes                       []importedRoute
	// Passthrough are where the host's TLS connections go unopened (a passthrough proxy).
	Passthrough []importedBackend
}

type importedRoute struct {
	Prefix   string
	Exact    string // an exact path in place of the prefix
	Regex    string // a path regex in place of the prefix
	Backends []importedBackend
	// The rest is what an HTTPProxy route may also say, in the design's words (nil: unset).
	Headers, Query                  map[string]any
	Method, Timeout                 string
	Retries, Redirect, Rewrite      map[string]any
	Respond                         map[string]any
	RequestHeaders, ResponseHeaders map[string]any
	RateLimit, Access, HealthCheck  map[string]any
	IdleTimeout                     string
	WebSockets, NoJWT               bool
	from                            string // where the import read it
}

// key is what the route matches, as the design says it.
func (r importedRoute) key() string {
	return fmt.Sprint(r.Prefix, r.Exact, r.Regex, r.Method, r.Headers, r.Query)
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
	imp.warnAnnotations(o)
	spec, _, _ := unstructured.NestedMap(o.Object, "spec")
	for _, k := range slices.Sorted(maps.Keys(spec)) {
		if k != "rules" && k != "tls" {
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: spec.%s is not imported: a design routes its hosts' paths, and the cluster's ingress provider picks the controller", id, k))
		}
	}
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
			route := importedRoute{Prefix: path}
			switch pt, _ := pm["pathType"].(string); pt {
			case "Prefix":
			case "Exact":
				route.Prefix, route.Exact = "/", path
			default:
				imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: path %s on %s has pathType %s; imported as a prefix", id, path, hostName, pt))
			}
			svc, _, _ := unstructured.NestedString(pm, "backend", "service", "name")
			if svc == "" {
				return fmt.Errorf("%s: path %s on %s has no service backend", id, path, hostName)
			}
			imp.addService(id, svc, pm["backend"].(map[string]any)["service"].(map[string]any)["port"])
			route.Backends = []importedBackend{{Service: svc, Weight: 100}}
			h.Routes = append(h.Routes, route)
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
			switch {
			case r.Exact != "":
				route = map[string]any{"exact": r.Exact}
			case r.Regex != "":
				route = map[string]any{"regex": r.Regex}
			}
			if len(bs) > 0 {
				route["backends"] = bs
			}
			if r.Method != "" {
				route["method"] = r.Method
			}
			for k, v := range map[string]map[string]any{"headers": r.Headers, "query": r.Query, "retries": r.Retries, "redirect": r.Redirect, "respond": r.Respond,
				"rewrite": r.Rewrite, "requestHeaders": r.RequestHeaders, "responseHeaders": r.ResponseHeaders} {
				if v != nil {
					route[k] = v
				}
			}
			if r.Timeout != "" {
				route["timeout"] = r.Timeout
			}
			if r.RateLimit != nil {
				route["rateLimit"] = r.RateLimit
			}
			if r.HealthCheck != nil {
				route["healthCheck"] = r.HealthCheck
			}
			if r.IdleTimeout != "" {
				route["idleTimeout"] = r.IdleTimeout
			}
			if r.Access != nil {
				route["access"] = r.Access
			}
			if r.WebSockets {
				route["websockets"] = true
			}
			if r.NoJWT {
				route["jwt"] = false
			}
			rs = append(rs, route)
		}
		vh := map[string]any{"routes": rs}
		if len(h.Passthrough) > 0 {
			var bs []any
			for _, b := range h.Passthrough {
				bs = append(bs, map[string]any{"service": b.Service, "weight": b.Weight})
			}
			vh = map[string]any{"passthrough": map[string]any{"backends": bs}}
		}
		if h.TLS != "" {
			vh["tls"] = map[string]any{"secret": h.TLS}
			if h.MinTLS != "" {
				vh["tls"].(map[string]any)["minVersion"] = h.MinTLS
			}
		}
		for k, v := range map[string]map[string]any{"cors": h.CORS, "rateLimit": h.RateLimit, "jwt": h.JWT, "access": h.Access} {
			if v != nil {
				vh[k] = v
			}
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

// warnAnnotations names each annotation of an imported object: they configure one controller
// (rewrites, timeouts, auth for ingress-nginx and others), and a design says what it means
// in its own fields or not at all.
func (imp *Imported) warnAnnotations(o *unstructured.Unstructured) {
	for _, k := range slices.Sorted(maps.Keys(o.GetAnnotations())) {
		if k == "kubectl.kubernetes.io/last-applied-configuration" {
			continue // kubectl's own record, not configuration
		}
		imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: metadata.annotations[%s] is not imported: a controller's annotation; say what it does in the design's own fields, where they can", ObjectID(o), k))
	}
}
