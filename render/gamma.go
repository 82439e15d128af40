package render

import (
	"cmp"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// gammaOptions says how one provider fills in what Gateway API's standard channel cannot say.
type gammaOptions struct {
	// annotate returns annotations for a route object (Linkerd's retry and timeout knobs).
	annotate func(svc schema.Service, r schema.Route) map[string]string
	// noMirror: the mesh cannot mirror requests (Linkerd reads no RequestMirror filter).
	noMirror bool
	// session is an HTTP rule's sessionPersistence (Gateway API's experimental channel), or nil.
	session map[string]any
}

// gammaRoutes renders each route of a service to its own HTTPRoute, GRPCRoute or TCPRoute
// attached to the Service (GAMMA), with the per-version Services as weighted backends. One
// object per route keeps each route's own retry and timeout settings expressible.
func gammaRoutes(in *compileInput, name string, svc schema.Service, opts gammaOptions, out *output) error {
	ns := in.design.Namespace
	parent := map[string]any{"group": "", "kind": "Service", "name": name, "port": int64(svc.Port)}
	for i, r := range svc.Routes {
		path := "services." + name + ".routes[" + strconv.Itoa(i) + "]"
		if r.Fault != nil {
			return in.fail(path+".fault", "%s cannot inject faults; remove fault or target an istio cluster", in.cluster.Mesh)
		}
		var backends []any
		for _, v := range slices.Sorted(maps.Keys(r.To)) {
			backends = append(backends, map[string]any{"name": name + "-" + v, "port": int64(svc.Port), "weight": int64(r.To[v])})
		}
		rule := map[string]any{"backendRefs": backends}
		if m := r.Mirror; m != nil && svc.Protocol != "tcp" {
			if opts.noMirror {
				out.warn("%s.mirror: %s cannot mirror requests; not rendered (version %s gets no copies; what the route's versions get is unchanged)", path, in.cluster.Mesh, m.Version)
			} else {
				rule["filters"] = []any{map[string]any{"type": "RequestMirror", "requestMirror": mirrorFilter(name, svc, m)}}
			}
		}
		var kind string
		switch svc.Protocol {
		case "tcp":
			kind = "TCPRoute"
		case "grpc":
			kind = "GRPCRoute"
			if r.Match != nil {
				m, err := grpcMatch(in, path, r.Match)
				if err != nil {
					return err
				}
				rule["matches"] = []any{m}
			}
		default:
			kind = "HTTPRoute"
			if r.Match != nil {
				rule["matches"] = []any{httpMatch(r.Match)}
			}
			if opts.session != nil {
				rule["sessionPersistence"] = opts.session
			}
			timeout := r.Timeout
			if timeout == nil {
				timeout = svc.Timeout
			}
			if timeout != nil {
				rule["timeouts"] = map[string]any{"request": timeout.Text}
			}
		}
		version := "gateway.networking.k8s.io/v1"
		if kind == "TCPRoute" {
			v, err := streamRouteVersion(in, kind, path)
			if err != nil {
				return err
			}
			version = v
		}
		o := newObject(version, kind, ns, routeName(name, i, r), map[string]any{
			"parentRefs": []any{parent},
			"rules":      []any{rule},
		})
		if opts.annotate != nil {
			if ann := opts.annotate(svc, r); len(ann) > 0 {
				o.SetAnnotations(ann)
			}
		}
		out.add(o)
	}
	return nil
}

// streamRouteVersion is the version of TCPRoute or TLSRoute the cluster's Gateway API CRDs
// serve: v1 from the release that made the kind standard (v1.6 for TCPRoute, v1.5 for
// TLSRoute), v1alpha2 on the experimental channel before it (and in the CRDs Linkerd's own
// chart installs), none on the standard channel before it. The CRDs convert between the two
// (their schemas are one), so a controller reads either; what must hold is that the cluster
// serves the one meshcd writes.
func streamRouteVersion(in *compileInput, kind, path string) (string, error) {
	standardFrom := map[string]int{"TCPRoute": 6, "TLSRoute": 5}[kind]
	g := in.cluster.GatewayAPI
	switch {
	case g.Minor() >= standardFrom:
		return "gateway.networking.k8s.io/v1", nil
	case g.Experimental():
		return "gateway.networking.k8s.io/v1alpha2", nil
	}
	return "", in.fail(path, "%s is standard from Gateway API v1.%d (experimental before), and cluster %s declares %s, which has no %s; declare the channel it serves (gatewayAPI: channel: \"experimental\"), as Linkerd's own CRDs chart does", kind, standardFrom, in.cluster.Name, g, kind)
}

// mirrorFilter is a RequestMirror filter to the version's own Service: percent when it is a
// whole number, else a fraction in hundredths of a percent.
func mirrorFilter(name string, svc schema.Service, m *schema.Mirror) map[string]any {
	f := map[string]any{"backendRef": map[string]any{"name": name + "-" + m.Version, "port": int64(svc.Port)}}
	if m.Percent == math.Trunc(m.Percent) {
		f["percent"] = int64(m.Percent)
	} else {
		f["fraction"] = map[string]any{"numerator": int64(math.Round(m.Percent * 100)), "denominator": int64(10000)}
	}
	return f
}

// jsonNumber is a number as a decoded JSON object holds it: int64 when whole, so a bundle
// compares equal after a round trip through the render worker.
func jsonNumber(f float64) any {
	if f == math.Trunc(f) {
		return int64(f)
	}
	return f
}

func httpMatch(m *schema.Match) map[string]any {
	out := map[string]any{}
	if m.Path != nil {
		switch {
		case m.Path.Exact != nil:
			out["path"] = map[string]any{"type": "Exact", "value": *m.Path.Exact}
		case m.Path.Prefix != nil:
			out["path"] = map[string]any{"type": "PathPrefix", "value": *m.Path.Prefix}
		default:
			out["path"] = map[string]any{"type": "RegularExpression", "value": *m.Path.Regex}
		}
	}
	if len(m.Headers) > 0 {
		out["headers"] = headerMatches(m.Headers)
	}
	if m.Method != "" {
		out["method"] = m.Method
	}
	return out
}

// headerMatches renders header matches; Gateway API has no prefix match, so a prefix becomes the
// equivalent anchored regular expression.
func headerMatches(headers map[string]schema.StringMatch) []any {
	var out []any
	for _, k := range slices.Sorted(maps.Keys(headers)) {
		h := headers[k]
		switch {
		case h.Exact != nil:
			out = append(out, map[string]any{"name": k, "type": "Exact", "value": *h.Exact})
		case h.Prefix != nil:
			out = append(out, map[string]any{"name": k, "type": "RegularExpression", "value": "^" + regexp.QuoteMeta(*h.Prefix)})
		default:
			out = append(out, map[string]any{"name": k, "type": "RegularExpression", "value": *h.Regex})
		}
	}
	return out
}

func grpcMatch(in *compileInput, path string, m *schema.Match) (map[string]any, error) {
	if m.Path != nil || m.Method != "" {
		return nil, in.fail(path+".match", "a grpc service's routes can match headers only, not a path or an HTTP method")
	}
	return map[string]any{"headers": headerMatches(m.Headers)}, nil
}

// compileGatewayAPI renders plain GAMMA routes. The standard channel has no retries, outlier
// detection, connection pools or mTLS policy: those become warnings (the mesh implementation's
// defaults apply). Authorization it cannot express at all, and leaving it out would open the
// service to everyone, so that is an error.
func compileGatewayAPI(in *compileInput, out *output) error {
	ns := in.design.Namespace
	for _, name := range slices.Sorted(maps.Keys(in.services)) {
		svc := in.services[name]
		path := "services." + name
		if svc.Authorization != nil {
			return in.fail(path+".authorization", "gateway-api has no authorization policy; refusing to render a service that would accept every caller")
		}
		if svc.JWT != nil {
			return in.fail(path+".jwt", "gateway-api has no token validation; refusing to render a service that would take requests without a token")
		}
		if svc.RateLimit != nil {
			return in.fail(path+".rateLimit", "gateway-api has no rate limit; without one the service would take every request")
		}
		if svc.ExtAuth != nil {
			return in.fail(path+".extAuth", "gateway-api has no external authorization for a mesh service; without it the service would take every request unchecked")
		}
		if svc.Retries != nil {
			out.warn("%s.retries: gateway-api (standard channel) has no retries; not rendered", path)
		}
		for i, r := range svc.Routes {
			if r.Retries != nil {
				out.warn("%s.routes[%d].retries: gateway-api (standard channel) has no retries; not rendered", path, i)
			}
			if svc.Protocol == "grpc" && (r.Timeout != nil || svc.Timeout != nil) {
				out.warn("%s.routes[%d]: GRPCRoute (standard channel) has no timeouts; not rendered", path, i)
			}
		}
		if svc.OutlierDetection != nil {
			out.warn("%s.outlierDetection: gateway-api has no outlier detection; not rendered", path)
		}
		if svc.ConnectionPool != nil {
			out.warn("%s.connectionPool: gateway-api has no connection pool limits; not rendered", path)
		}
		session := gatewaySessionPersistence(in, path, svc, out)
		if svc.MTLS != "" {
			out.warn("%s.mtls: gateway-api has no mTLS policy; the cluster's mesh decides", path)
		}
		if len(svc.Routes) > 0 {
			out.add(versionServices(ns, name, svc, nil)...)
		}
		if err := gammaRoutes(in, name, svc, gammaOptions{session: session}, out); err != nil {
			return err
		}
	}
	return nil
}

// compileLinkerd renders GAMMA routes with Linkerd's retry and timeout annotations, failure
// accrual on the per-version Services for outlier detection, and Server, MeshTLSAuthentication
// and AuthorizationPolicy objects for mTLS and authorization.
func compileLinkerd(in *compileInput, out *output) error {
	ns := in.design.Namespace
	for _, name := range slices.Sorted(maps.Keys(in.services)) {
		svc := in.services[name]
		path := "services." + name
		if svc.ConnectionPool != nil {
			out.warn("%s.connectionPool: linkerd has no connection pool limits; not rendered", path)
		}
		if svc.LoadBalancer != nil {
			out.warn("%s.loadBalancer: linkerd always balances by latency (EWMA) and has no session affinity; not rendered", path)
		}
		var svcAnn map[string]string
		if o := svc.OutlierDetection; o != nil {
			svcAnn = map[string]string{
				"balancer.linkerd.io/failure-accrual":                          "consecutive",
				"balancer.linkerd.io/failure-accrual-consecutive-max-failures": strconv.Itoa(o.Consecutive5xxErrors),
				"balancer.linkerd.io/failure-accrual-consecutive-min-penalty":  o.BaseEjectionTime.Text,
				"balancer.linkerd.io/failure-accrual-consecutive-jitter-ratio": "0.5",
			}
			out.warn("%s.outlierDetection: linkerd's failure accrual has no interval or ejection percentage; only the failure count and penalty are rendered", path)
			if o.ConsecutiveGatewayErrors > 0 {
				out.warn("%s.outlierDetection.consecutiveGatewayErrors: linkerd counts all failures alike; only consecutive5xxErrors is rendered", path)
			}
		}
		if len(svc.Routes) > 0 {
			out.add(versionServices(ns, name, svc, svcAnn)...)
		}
		for i, r := range svc.Routes {
			if rt := cmp.Or(r.Retries, svc.Retries); rt != nil && rt.Backoff != nil {
				out.warn("%s.routes[%d].retries.backoff: linkerd has no retry backoff setting; its own applies", path, i)
			}
		}
		err := gammaRoutes(in, name, svc, gammaOptions{annotate: linkerdRouteAnnotations, noMirror: true}, out)
		if err != nil {
			return err
		}
		objs, err := linkerdPolicy(in, name, svc, out)
		if err != nil {
			return err
		}
		out.add(objs...)
	}
	return nil
}

func linkerdRouteAnnotations(svc schema.Service, r schema.Route) map[string]string {
	ann := map[string]string{}
	retries := r.Retries
	if retries == nil {
		retries = svc.Retries
	}
	if retries != nil && svc.Protocol != "tcp" {
		ann["retry.linkerd.io/limit"] = strconv.Itoa(retries.Attempts)
		if retries.PerTryTimeout != nil {
			ann["retry.linkerd.io/timeout"] = retries.PerTryTimeout.Text
		}
		on := linkerdRetryOn(svc.Protocol, retries.On, retries.CodeList())
		if svc.Protocol == "grpc" {
			ann["retry.linkerd.io/grpc"] = on
		} else {
			ann["retry.linkerd.io/http"] = on
		}
	}
	if svc.Protocol == "grpc" {
		timeout := r.Timeout
		if timeout == nil {
			timeout = svc.Timeout
		}
		if timeout != nil {
			ann["timeout.linkerd.io/request"] = timeout.Text
		}
	}
	return ann
}

// linkerdRetryOn maps retry conditions to Linkerd's: status ranges for HTTP, gRPC status
// names for gRPC. Connection-level conditions Linkerd retries on its own.
func linkerdRetryOn(protocol string, on, codes []string) string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, c := range on {
		switch {
		case protocol == "grpc" && (c == "unavailable" || c == "cancelled" || c == "deadline-exceeded"):
			add(c)
		case protocol != "grpc" && (c == "5xx" || c == "gateway-error"):
			add(c)
		case protocol != "grpc" && c == "retriable-4xx":
			add("409")
		}
	}
	if protocol != "grpc" {
		for _, c := range codes {
			add(c)
		}
	}
	if len(out) == 0 {
		if protocol == "grpc" {
			return "unavailable"
		}
		return "5xx"
	}
	return strings.Join(out, ",")
}

func linkerdPolicy(in *compileInput, name string, svc schema.Service, out *output) ([]*unstructured.Unstructured, error) {
	ns := in.design.Namespace
	path := "services." + name
	if svc.JWT != nil {
		return nil, in.fail(path+".jwt", "linkerd does not validate tokens; refusing to render a service that would take requests without one")
	}
	if svc.ExtAuth != nil {
		return nil, in.fail(path+".extAuth", "linkerd has no external authorization; refusing to render a service that would take every request unchecked")
	}
	if svc.MTLS == "disabled" {
		out.warn("%s.mtls: linkerd always encrypts traffic between meshed pods; \"disabled\" has no effect", path)
	}
	if svc.MTLS != "strict" && svc.MTLS != "permissive" && svc.Authorization == nil && svc.RateLimit == nil {
		return nil, nil
	}
	proxyProtocol := "unknown"
	switch svc.Protocol {
	case "grpc":
		proxyProtocol = "gRPC"
	case "tcp":
		proxyProtocol = "opaque"
	}
	access := "deny"
	if svc.MTLS != "strict" && svc.Authorization == nil {
		access = "all-unauthenticated" // permissive, or a Server only for a rate limit
	}
	serverName := name + "-" + portName(svc)
	objs := []*unstructured.Unstructured{newObject("policy.linkerd.io/v1beta3", "Server", ns, serverName, map[string]any{
		"podSelector":   map[string]any{"matchLabels": map[string]any{"app": name}},
		"port":          int64(svc.Port),
		"proxyProtocol": proxyProtocol,
		"accessPolicy":  access,
	})}
	if l := svc.RateLimit; l != nil {
		perSecond, err := linkerdRequestsPerSecond(in, path+".rateLimit", l)
		if err != nil {
			return nil, err
		}
		if l.Burst > 0 {
			out.warn("%s.rateLimit.burst: linkerd's local rate limit has no burst; not rendered", path)
		}
		objs = append(objs, newObject("policy.linkerd.io/v1alpha1", "HTTPLocalRateLimitPolicy", ns, name, map[string]any{
			"targetRef": map[string]any{"group": "policy.linkerd.io", "kind": "Server", "name": serverName},
			"total":     map[string]any{"requestsPerSecond": perSecond},
		}))
	}
	if access != "deny" {
		return objs, nil
	}
	if svc.Authorization != nil {
		return linkerdAuthorization(in, name, svc, serverName, objs, out)
	}
	// Strict mTLS without authorization admits every meshed identity.
	return append(objs,
		newObject("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", ns, name+"-callers", map[string]any{"identities": []any{"*"}}),
		newObject("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", ns, name+"-callers", map[string]any{
			"targetRef": map[string]any{"group": "policy.linkerd.io", "kind": "Server", "name": serverName},
			"requiredAuthenticationRefs": []any{map[string]any{
				"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": name + "-callers",
			}},
		}),
	), nil
}

// linkerdRequestsPerSecond is a rate limit as Linkerd counts it: whole requests per second.
func linkerdRequestsPerSecond(in *compileInput, path string, l *schema.RateLimit) (int64, error) {
	per := map[string]int{"second": 1, "minute": 60, "hour": 3600}[l.Unit]
	if l.Requests%per != 0 {
		return 0, in.fail(path, "linkerd counts whole requests per second, and %d per %s is not; say a multiple of %d, or requests per second", l.Requests, l.Unit, per)
	}
	return int64(l.Requests / per), nil
}

// gatewaySessionPersistence is a service's session affinity as Gateway API says it: a cookie
// or a header named by the design, on the experimental channel. An algorithm, affinity by the
// caller's address, and anything on the standard channel are left to the mesh's default
// balancing, said in a warning (balancing changes no one's access).
func gatewaySessionPersistence(in *compileInput, path string, svc schema.Service, out *output) map[string]any {
	lb := svc.LoadBalancer
	if lb == nil {
		return nil
	}
	g := in.cluster.GatewayAPI
	switch {
	case lb.Hash == nil:
		out.warn("%s.loadBalancer.algorithm: gateway-api has no balancing algorithm; the mesh's default balancing applies", path)
		return nil
	case !g.Experimental():
		out.warn("%s.loadBalancer: %s has no session persistence (the experimental channel has it; say gatewayAPI: channel: \"experimental\" if the cluster serves it); the mesh's default balancing applies", path, g)
		return nil
	case lb.Hash.SourceIP:
		out.warn("%s.loadBalancer.hash.sourceIP: gateway-api keeps sessions by a cookie or a header, not by the caller's address; the mesh's default balancing applies", path)
		return nil
	case svc.Protocol != "http":
		out.warn("%s.loadBalancer: gateway-api keeps sessions on HTTPRoutes only; the mesh's default balancing applies", path)
		return nil
	}
	if h := lb.Hash; h.Header != "" {
		return map[string]any{"type": "Header", "sessionName": h.Header}
	}
	c := lb.Hash.Cookie
	sp := map[string]any{"type": "Cookie", "sessionName": c.Name}
	if c.TTL != nil {
		sp["absoluteTimeout"] = c.TTL.Text
		sp["cookieConfig"] = map[string]any{"lifetimeType": "Permanent"}
	}
	return sp
}
