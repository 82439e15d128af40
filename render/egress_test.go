package render

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshcd/meshcd/schema"
)

// TestEgressPerMesh: declared external hosts and a registry-only policy become Istio
// ServiceEntries and a REGISTRY_ONLY Sidecar, and a denying Linkerd EgressNetwork with a route
// per host that lets it through; plain Gateway API, and a bare TCP host on Linkerd (which
// could only be let through by port), are refused rather than left open.
func TestEgressPerMesh(t *testing.T) {
	d := &schema.Design{Name: "checkout", Namespace: "shop", Egress: &schema.Egress{Policy: "registry-only", Hosts: []schema.EgressHost{
		{Host: "api.payments.example.net", Port: 443, Protocol: "tls"},
		{Host: "*.googleapis.com", Port: 443, Protocol: "tls"},
		{Host: "fx-rates.example.org", Port: 80, Protocol: "http"},
	}}}
	rendered := func(mesh schema.Mesh) (string, error) {
		b, err := Render(t.Context(), d, &schema.Cluster{Name: "c", Mesh: mesh}, Options{Revision: "r", Repo: NewRepo(nil)})
		if err != nil {
			return "", err
		}
		return bundleText(b, nil), nil
	}
	for mesh, wants := range map[schema.Mesh][]string{
		schema.MeshIstio: {
			"kind: ServiceEntry\nmetadata:\n  annotations:",
			"  name: egress-wildcard-googleapis-com-443\n  namespace: shop\nspec:\n  exportTo:\n  - .\n  hosts:\n  - '*.googleapis.com'\n  location: MESH_EXTERNAL\n  ports:\n  - name: tls-443\n    number: 443\n    protocol: TLS\n  resolution: NONE\n",
			"  hosts:\n  - fx-rates.example.org\n  location: MESH_EXTERNAL\n  ports:\n  - name: http-80\n    number: 80\n    protocol: HTTP\n  resolution: DNS\n",
			"kind: Sidecar\nmetadata:\n  annotations:",
			"spec:\n  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n",
		},
		schema.MeshLinkerd: {
			"kind: EgressNetwork\nmetadata:\n  annotations:",
			"spec:\n  trafficPolicy: Deny\n",
			"kind: TLSRoute\nmetadata:\n  annotations:",
			"  name: egress-api-payments-example-net-443\n  namespace: shop\nspec:\n  hostnames:\n  - api.payments.example.net\n  parentRefs:\n  - group: policy.linkerd.io\n    kind: EgressNetwork\n    name: egress\n    port: 443\n  rules:\n  - backendRefs:\n    - group: policy.linkerd.io\n      kind: EgressNetwork\n      name: egress\n      port: 443\n",
			"kind: HTTPRoute\nmetadata:\n  annotations:",
		},
	} {
		text, err := rendered(mesh)
		if err != nil {
			t.Fatalf("%s: %v", mesh, err)
		}
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s: no %q in:\n%s", mesh, want, text)
			}
		}
	}

	// allow-all: Istio keeps the ServiceEntries, nobody renders a policy.
	d.Egress.Policy = "allow-all"
	for _, mesh := range []schema.Mesh{schema.MeshIstio, schema.MeshLinkerd, schema.MeshGatewayAPI} {
		text, err := rendered(mesh)
		if err != nil {
			t.Fatalf("%s allow-all: %v", mesh, err)
		}
		if strings.Contains(text, "REGISTRY_ONLY") || strings.Contains(text, "EgressNetwork") {
			t.Errorf("%s allow-all renders a deny policy:\n%s", mesh, text)
		}
	}

	d.Egress.Policy = "registry-only"
	_, err := rendered(schema.MeshGatewayAPI)
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.Path != "egress.policy" {
		t.Errorf("gateway-api registry-only: %v, want an error at egress.policy", err)
	}
	d.Egress.Hosts = append(d.Egress.Hosts, schema.EgressHost{Host: "db.example.net", Port: 5432, Protocol: "tcp"})
	_, err = rendered(schema.MeshLinkerd)
	if !errors.As(err, &rerr) || rerr.Path != "egress.hosts[3].protocol" || !strings.Contains(rerr.Message, "every host on port 5432") {
		t.Errorf("linkerd with a bare TCP host: %v, want an error at egress.hosts[3].protocol", err)
	}
}

// TestStreamRouteVersionsFollowTheCluster: a tcp service's TCPRoute and an egress host's
// TLSRoute on Linkerd are written at a version the cluster's Gateway API serves: v1 once the
// kind is standard (v1.6 for TCPRoute, v1.5 for TLSRoute), v1alpha2 on an older experimental
// channel (as Linkerd's own CRDs serve them), and an error on an older standard channel,
// which has neither kind.
func TestStreamRouteVersionsFollowTheCluster(t *testing.T) {
	d := &schema.Design{Name: "db", Namespace: "data",
		Services: map[string]schema.Service{"pg": {Port: 5432, Protocol: "tcp",
			Versions: map[string]schema.Version{"v1": {Labels: map[string]string{"version": "v1"}}},
			Routes:   []schema.Route{{To: map[string]int{"v1": 100}}}}},
		Egress: &schema.Egress{Policy: "registry-only", Hosts: []schema.EgressHost{{Host: "backup.example.net", Port: 443, Protocol: "tls"}}},
	}
	for _, c := range []struct {
		version, channel string
		tcp, tls         string // apiVersions, or the path refused
	}{
		{"v1.6", "standard", "gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1"},
		{"v1.5", "standard", "services.pg.routes[0]", "gateway.networking.k8s.io/v1"},
		{"v1.5", "experimental", "gateway.networking.k8s.io/v1alpha2", "gateway.networking.k8s.io/v1"},
		{"v1.4", "experimental", "gateway.networking.k8s.io/v1alpha2", "gateway.networking.k8s.io/v1alpha2"},
		{"v1.4", "standard", "services.pg.routes[0]", "services.pg.routes[0]"},
	} {
		cluster := schema.Cluster{Name: "c", Mesh: schema.MeshLinkerd, GatewayAPI: schema.GatewayAPI{Version: c.version, Channel: c.channel}}
		b, err := Render(t.Context(), d, &cluster, Options{Revision: "r"})
		var rerr *Error
		if errors.As(err, &rerr) {
			if rerr.Path != c.tcp && rerr.Path != c.tls || !strings.Contains(rerr.Message, "is standard from Gateway API") {
				t.Errorf("%s %s: %v, want TCPRoute %s and TLSRoute %s", c.version, c.channel, err, c.tcp, c.tls)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, o := range b.Objects {
			if k := o.GetKind(); k == "TCPRoute" || k == "TLSRoute" {
				got[k] = o.GetAPIVersion()
			}
		}
		if got["TCPRoute"] != c.tcp || got["TLSRoute"] != c.tls {
			t.Errorf("%s %s: TCPRoute %s and TLSRoute %s, want %s and %s", c.version, c.channel, got["TCPRoute"], got["TLSRoute"], c.tcp, c.tls)
		}
	}
}

// TestEgressTLSOrigination: a host the mesh opens TLS to is one ExternalName Service the
// workload calls in plain HTTP on every mesh that can do it. On Istio, which routes that
// Service as an alias of the host, the host's ServiceEntry (HTTP on its port) and
// DestinationRule open TLS and check its name; on Gateway API a BackendTLSPolicy on the
// Service does. Linkerd, which cannot open TLS for a workload, and a Gateway API release
// without BackendTLSPolicy are refused at the field.
func TestEgressTLSOrigination(t *testing.T) {
	d := &schema.Design{Name: "checkout", Namespace: "shop", Egress: &schema.Egress{Policy: "allow-all", Hosts: []schema.EgressHost{
		{Host: "fx-rates.example.org", Port: 80, Protocol: "http"},
		{Host: "api.payments.example.net", Port: 443, Protocol: "http", OriginateTLS: &schema.OriginateTLS{Service: "payments-api"}},
	}}}
	rendered := func(c schema.Cluster) (string, error) {
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(nil)})
		if err != nil {
			return "", err
		}
		return bundleText(b, nil), nil
	}
	service := "kind: Service\nmetadata:\n  annotations:"
	serviceSpec := "  name: payments-api\n  namespace: shop\nspec:\n  externalName: api.payments.example.net\n  ports:\n  - appProtocol: http\n    name: http\n    port: 443\n    protocol: TCP\n  type: ExternalName\n"
	for mesh, wants := range map[schema.Mesh][]string{
		schema.MeshIstio: {service, serviceSpec,
			"kind: DestinationRule\nmetadata:\n  annotations:",
			"  name: egress-api-payments-example-net-443\n  namespace: shop\nspec:\n  exportTo:\n  - .\n  host: api.payments.example.net\n  trafficPolicy:\n    tls:\n      caCertificates: /etc/ssl/certs/ca-certificates.crt\n      mode: SIMPLE\n      sni: api.payments.example.net\n      subjectAltNames:\n      - api.payments.example.net\n",
			// Istio routes the Service, an alias, as the host itself: the host's own entry says
			// the workload speaks HTTP on its port.
			"  hosts:\n  - api.payments.example.net\n  location: MESH_EXTERNAL\n  ports:\n  - name: http-443\n    number: 443\n    protocol: HTTP\n  resolution: DNS\n",
			"  hosts:\n  - fx-rates.example.org\n"},
		schema.MeshGatewayAPI: {service, serviceSpec,
			"apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\n",
			"  name: payments-api\n  namespace: shop\nspec:\n  targetRefs:\n  - group: \"\"\n    kind: Service\n    name: payments-api\n  validation:\n    hostname: api.payments.example.net\n    wellKnownCACertificates: System\n"},
	} {
		text, err := rendered(schema.Cluster{Name: "c", Mesh: mesh})
		if err != nil {
			t.Fatalf("%s: %v", mesh, err)
		}
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s: no %q in:\n%s", mesh, want, text)
			}
		}
	}

	var rerr *Error
	for _, tc := range []struct {
		cluster schema.Cluster
		want    string
	}{
		{schema.Cluster{Name: "c", Mesh: schema.MeshLinkerd}, "linkerd does not open TLS for a workload; the workload would send plain HTTP to api.payments.example.net:443"},
		{schema.Cluster{Name: "c", Mesh: schema.MeshGatewayAPI, GatewayAPI: schema.GatewayAPI{Version: "v1.3.0", Channel: "standard"}}, "needs a BackendTLSPolicy"},
	} {
		_, err := rendered(tc.cluster)
		if !errors.As(err, &rerr) || rerr.Path != "egress.hosts[1].originateTLS" || !strings.Contains(rerr.Message, tc.want) {
			t.Errorf("%s %s: %v, want an error at egress.hosts[1].originateTLS saying %q", tc.cluster.Mesh, tc.cluster.GatewayAPI, err, tc.want)
		}
	}
}
