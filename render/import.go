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
	TLS    string
	Routes []importedRoute
}

type importedRoute struct {
	Prefix   string
	Backends []importedBackend
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
	for _, r := range routes {
		rm, _ := r.(map[string]any)
		prefix := "/"
		conds, _ := rm["conditions"].([]any)
		for _, c := range conds {
			if p, ok := c.(map[string]any)["prefix"].(string); ok {
				prefix = p
			}
		}
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
		h.Routes = append(h.Routes, importedRoute{Prefix: prefix, Backends: backends})
	}
	return nil
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
			rs = append(rs, map[string]any{"prefix": r.Prefix, "backends": bs})
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
