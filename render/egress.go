package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// compileEgress renders what a design says of the services it calls outside the mesh, for the
// cluster's mesh. Istio: a namespace-local ServiceEntry per host, and with registry-only a
// Sidecar whose outbound policy refuses every other host. Linkerd: with registry-only an
// EgressNetwork that denies, and a route on it per host that lets that host through (by TLS
// server name or Host header). Plain Gateway API has no egress policy: registry-only is an
// error there, since leaving it out would let workloads reach anything. A host the mesh opens
// TLS to (originateTLS) is an ExternalName Service the workload calls in plain HTTP, with the
// host's DestinationRule (Istio, beside its ServiceEntry) or a BackendTLSPolicy on the Service
// (Gateway API) that opens TLS to the host and checks its certificate; Linkerd cannot open TLS
// for a workload, so it is an error there.
func compileEgress(in *compileInput, out *output) error {
	e := in.design.Egress
	if e == nil {
		return nil
	}
	ns := in.design.Namespace
	for i, h := range e.Hosts {
		if h.OriginateTLS == nil {
			continue
		}
		at := fmt.Sprintf("egress.hosts[%d].originateTLS", i)
		name := h.OriginateTLS.Service
		switch in.cluster.Mesh {
		case schema.MeshIstio:
			// Istio reads an ExternalName Service as an alias of the host it names: traffic to
			// it goes to the host's own service (the ServiceEntry below, HTTP on the port) and
			// takes the host's DestinationRule, which opens TLS.
			out.add(originationService(ns, h))
			out.add(newObject("networking.istio.io/v1", "DestinationRule", ns, egressName(h), map[string]any{
				"host":     h.Host,
				"exportTo": []any{"."},
				"trafficPolicy": map[string]any{"tls": map[string]any{
					"mode": "SIMPLE", "sni": h.Host, "subjectAltNames": []any{h.Host}, "caCertificates": systemCAs,
				}},
			}))
		case schema.MeshGatewayAPI:
			version, err := tlsPolicyVersion(in, at, h.Host)
			if err != nil {
				return err
			}
			out.add(originationService(ns, h))
			out.add(newObject(version, "BackendTLSPolicy", ns, name, map[string]any{
				"targetRefs": []any{map[string]any{"group": "", "kind": "Service", "name": name}},
				"validation": map[string]any{"hostname": h.Host, "wellKnownCACertificates": "System"},
			}))
		case schema.MeshLinkerd:
			return in.fail(at, "linkerd does not open TLS for a workload; the workload would send plain HTTP to %s:%d (speak TLS to the host itself, with protocol: \"tls\")", h.Host, h.Port)
		}
	}
	switch in.cluster.Mesh {
	case schema.MeshIstio:
		for _, h := range e.Hosts {
			resolution := "DNS"
			if strings.HasPrefix(h.Host, "*.") {
				resolution = "NONE" // a wildcard resolves per request, by the name the workload asked for
			}
			protocol := strings.ToUpper(h.Protocol)
			out.add(newObject("networking.istio.io/v1", "ServiceEntry", ns, egressName(h), map[string]any{
				"hosts":      []any{h.Host},
				"location":   "MESH_EXTERNAL",
				"resolution": resolution,
				"ports":      []any{map[string]any{"number": int64(h.Port), "name": h.Protocol + "-" + strconv.Itoa(h.Port), "protocol": protocol}},
				"exportTo":   []any{"."},
			}))
		}
		if e.Policy == "registry-only" {
			out.add(newObject("networking.istio.io/v1", "Sidecar", ns, "egress", map[string]any{
				"outboundTrafficPolicy": map[string]any{"mode": "REGISTRY_ONLY"},
			}))
		}
	case schema.MeshLinkerd:
		if e.Policy != "registry-only" {
			return nil // Linkerd lets meshed workloads reach any host unless an EgressNetwork denies it
		}
		parent := func(port int) map[string]any {
			return map[string]any{"group": "policy.linkerd.io", "kind": "EgressNetwork", "name": "egress", "port": int64(port)}
		}
		out.add(newObject("policy.linkerd.io/v1alpha1", "EgressNetwork", ns, "egress", map[string]any{"trafficPolicy": "Deny"}))
		for i, h := range e.Hosts {
			kind := "TLSRoute"
			switch h.Protocol {
			case "http":
				kind = "HTTPRoute"
			case "tcp":
				return in.fail(fmt.Sprintf("egress.hosts[%d].protocol", i), "linkerd tells bare TCP destinations apart by port only: letting %s:%d through would let every host on port %d through; say tls if the workload speaks TLS, or use allow-all", h.Host, h.Port, h.Port)
			}
			version := "gateway.networking.k8s.io/v1"
			if kind == "TLSRoute" {
				v, err := streamRouteVersion(in, kind, fmt.Sprintf("egress.hosts[%d]", i))
				if err != nil {
					return err
				}
				version = v
			}
			out.add(newObject(version, kind, ns, egressName(h), map[string]any{
				"hostnames":  []any{h.Host},
				"parentRefs": []any{parent(h.Port)},
				"rules":      []any{map[string]any{"backendRefs": []any{parent(h.Port)}}},
			}))
		}
	case schema.MeshGatewayAPI:
		if e.Policy == "registry-only" {
			return in.fail("egress.policy", "gateway-api has no egress policy; refusing to render a namespace that could reach every host")
		}
	}
	return nil
}

// systemCAs is the system's CA bundle in Istio's proxy image, named so the sidecar checks the
// host's certificate whatever its VERIFY_CERTIFICATE_AT_CLIENT default.
const systemCAs = "/etc/ssl/certs/ca-certificates.crt"

// originationService is the ExternalName Service a workload calls in plain HTTP for an external
// host the mesh opens TLS to; an ExternalName Service maps no ports, so it listens on the host's.
func originationService(ns string, h schema.EgressHost) *unstructured.Unstructured {
	return newObject("v1", "Service", ns, h.OriginateTLS.Service, map[string]any{
		"type":         "ExternalName",
		"externalName": h.Host,
		"ports":        []any{map[string]any{"name": "http", "port": int64(h.Port), "protocol": "TCP", "appProtocol": "http"}},
	})
}

// egressName names the objects of one external host and port.
func egressName(h schema.EgressHost) string {
	return "egress-" + slug(h.Host) + "-" + strconv.Itoa(h.Port)
}
