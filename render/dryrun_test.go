package render

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// TestRenderedObjectsAreAcceptedByARealAPIServer server-side applies, as a dry run, every
// object every example design renders for every provider, on a real kube-apiserver with the
// upstream Istio, Gateway API and Linkerd CRDs: schema mistakes golden files cannot catch.
func TestRenderedObjectsAreAcceptedByARealAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{Clusters: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	apply := dryRunner(t, env.Clusters[0].Config())
	checked := 0
	for _, ex := range examples {
		fleet, designs, files := loadExample(t, ex)
		for i := range designs {
			d := &designs[i]
			// Every provider (a cluster per mesh), and every real target cluster (their ingress
			// providers and overrides).
			var clusters []schema.Cluster
			for _, mesh := range []schema.Mesh{schema.MeshIstio, schema.MeshLinkerd, schema.MeshGatewayAPI} {
				clusters = append(clusters, asMesh(t, fleet, d, mesh))
			}
			clusters = append(clusters, d.TargetClusters(fleet)...)
			for _, c := range clusters {
				mesh := c.Name
				b, err := Render(ctx, d, &c, Options{Revision: "0123abc", Repo: NewRepo(files)})
				var rerr *Error
				if errors.As(err, &rerr) {
					continue // a feature the provider cannot express; the golden file records it
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range b.Objects {
					if err := apply(ctx, o); err != nil {
						t.Errorf("%s/%s on %s: %s rejected: %v", ex, d.Name, mesh, ObjectID(o), err)
					}
					checked++
				}
			}
		}
	}
	// The edge fields of this wave on Istio ingress: header matches, a direct response, client
	// certificates and a passthrough host.
	efleet, edesigns, efiles := loadExample(t, "edge")
	for i := range edesigns {
		d := &edesigns[i]
		if d.Name != "search" {
			continue
		}
		vh := d.Ingress.Hosts["search.example.com"]
		vh.Routes[0].Headers = map[string]schema.HeaderMatch{"x-client": {Prefix: "mobile/"}, "x-beta": {Present: true}, "x-legacy": {Absent: true}}
		vh.Routes = append(vh.Routes, schema.IngressRoute{Prefix: "/internal", Respond: &schema.Respond{Status: 403, Body: "closed"}})
		vh.TLS.ClientCA = &schema.ClientCA{Secret: "wildcard-tls-cacert"}
		d.Ingress.Hosts["search.example.com"] = vh
		d.Ingress.Hosts["db.example.com"] = schema.VirtualHost{Passthrough: &schema.Passthrough{Backends: []schema.IngressBackend{{Service: "query", Weight: 100}}}}
		c := d.TargetClusters(efleet)[0]
		c.Ingress = "istio"
		b, err := Render(ctx, d, &c, Options{Revision: "r", Repo: NewRepo(efiles)})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range b.Objects {
			if err := apply(ctx, o); err != nil {
				t.Errorf("search on istio ingress: %s rejected: %v", ObjectID(o), err)
			}
			checked++
		}
	}

	// A host's JWT and address rules on Istio ingress, their policies in the gateway's
	// namespace (one that exists here stands for istio-system).
	{
		d, c, files := gatewayPoliciesDesign(t, "shop")
		b, err := Render(ctx, d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range b.Objects {
			if err := apply(ctx, o); err != nil {
				t.Errorf("platform's JWT and address rules on istio ingress: %s rejected: %v", ObjectID(o), err)
			}
			checked++
		}
	}

	// Local rate limits on Istio ingress: the gateway's EnvoyFilters for a host, an owner's
	// route and a team's route, and the VirtualServices whose routes they name.
	{
		d, shop, c, files := rateLimitedDesigns(t, "shop")
		for _, d := range []*schema.Design{d, shop} {
			b, err := Render(ctx, d, &c, Options{Revision: "r", Repo: NewRepo(files)})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range b.Objects {
				if err := apply(ctx, o); err != nil {
					t.Errorf("%s's rate limits on istio ingress: %s rejected: %v", d.Name, ObjectID(o), err)
				}
				checked++
			}
		}
	}

	// Exact and regex paths, the rewrites of each provider that has them, and query
	// parameters matched every way.
	for _, provider := range []string{"contour", "gateway-api", "istio"} {
		d := pathsDesign(&schema.Rewrite{Path: "/healthz"})
		d.Namespace = "shop" // one the examples' renders created
		routes := d.Ingress.Hosts["www.example.com"].Routes
		routes[0].Query = map[string]schema.HeaderMatch{"tab": {Prefix: "new"}, "v": {Regex: "[0-9]+"}, "debug": {Present: true}}
		switch provider {
		case "contour":
			routes[2].Rewrite = nil
		case "istio":
			routes[1].Rewrite = &schema.Rewrite{Regex: &schema.RegexRewrite{Match: "^/api/(v[0-9]+)/(.*)$", Substitution: "/\\2"}}
		}
		c := schema.Cluster{Name: provider, Mesh: schema.MeshIstio, Ingress: provider}
		b, err := Render(ctx, d, &c, Options{Revision: "r"})
		if err != nil {
			t.Fatalf("paths on %s: %v", provider, err)
		}
		for _, o := range b.Objects {
			if err := apply(ctx, o); err != nil {
				t.Errorf("paths on %s: %s rejected: %v", provider, ObjectID(o), err)
			}
			checked++
		}
	}

	// A token and a rate limit on a service, each on the mesh that can say it (Istio's rate
	// limit where the cluster opts in to EnvoyFilters).
	for _, mesh := range []schema.Mesh{schema.MeshIstio, schema.MeshLinkerd} {
		d := meshPolicyDesign()
		svc := d.Services["orders"]
		if mesh == schema.MeshLinkerd {
			svc.JWT = nil
		} else {
			svc.ExtAuth = &schema.MeshExtAuth{Provider: "opa", SkipPaths: []string{"/healthz", "/debug/*"}}
		}
		d.Services["orders"] = svc
		b, err := Render(ctx, d, &schema.Cluster{Name: string(mesh), Mesh: mesh, Istio: schema.IstioConfig{EnvoyFilters: true, ExtAuthProviders: []string{"opa"}}}, Options{Revision: "r", Repo: NewRepo(nil)})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range b.Objects {
			if err := apply(ctx, o); err != nil {
				t.Errorf("orders on %s: %s rejected: %v", mesh, ObjectID(o), err)
			}
			checked++
		}
	}
	if checked < 50 {
		t.Fatalf("only %d objects were checked; the examples should render many more", checked)
	}
	t.Logf("%d rendered objects accepted by kube-apiserver", checked)
}

// dryRunner returns a function that server-side applies one object to the cluster as a dry
// run with strict field validation (a Namespace for real, so objects in it can be dry-run).
func dryRunner(t *testing.T, cfg *rest.Config) func(context.Context, *unstructured.Unstructured) error {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return func(ctx context.Context, o *unstructured.Unstructured) error {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return err
		}
		ri := dynamic.ResourceInterface(dyn.Resource(m.Resource))
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		data, err := o.MarshalJSON()
		if err != nil {
			return err
		}
		opts := metav1.PatchOptions{FieldManager: "meshcd-test", DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}
		if o.GetKind() == "Namespace" {
			opts.DryRun = nil // namespaced objects can only be dry-run into a namespace that exists
		}
		_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts)
		return err
	}
}

// TestExperimentalGatewayAPIRendersAreAccepted renders examples/edge for a gateway-api cluster
// that declares Gateway API v1.6's experimental channel (retries) and dry-runs every object on
// a real apiserver serving that channel's CRDs.
func TestExperimentalGatewayAPIRendersAreAccepted(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{Clusters: 1, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	if err := testenv.InstallCRDsWithGatewayAPI(ctx, env.Clusters[0].Config(), "v1.6.0", "experimental"); err != nil {
		t.Fatal(err)
	}
	apply := dryRunner(t, env.Clusters[0].Config())
	fleet, designs, files := loadExample(t, "edge")
	retries := 0
	for i := range designs {
		c := designs[i].TargetClusters(fleet)[0]
		c.Ingress = "gateway-api"
		c.GatewayAPI = schema.GatewayAPI{Version: "v1.6", Channel: "experimental"}
		b, err := Render(ctx, &designs[i], &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range b.Objects {
			if err := apply(ctx, o); err != nil {
				t.Errorf("%s: %s rejected: %v", designs[i].Name, ObjectID(o), err)
			}
			rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
			for _, r := range rules {
				if _, ok := r.(map[string]any)["retry"]; ok {
					retries++
				}
			}
		}
	}
	if retries == 0 {
		t.Fatal("no HTTPRoute rule with a retry was rendered")
	}

	// Session affinity on the mesh's own routes: an HTTPRoute rule's sessionPersistence.
	sticky := &schema.Design{Name: "cart", Namespace: "shop", Services: map[string]schema.Service{"cart": {
		Port: 8080, Protocol: "http",
		LoadBalancer: &schema.LoadBalancer{Hash: &schema.LBHash{Cookie: &schema.LBCookie{Name: "cart", TTL: &schema.Duration{Text: "1h"}}}},
		Versions:     map[string]schema.Version{"v1": {Labels: map[string]string{"version": "v1"}}},
		Routes:       []schema.Route{{To: map[string]int{"v1": 100}}},
	}}}
	b, err := Render(ctx, sticky, &schema.Cluster{Name: "c", Mesh: schema.MeshGatewayAPI, GatewayAPI: schema.GatewayAPI{Version: "v1.6", Channel: "experimental"}}, Options{Revision: "r", Repo: NewRepo(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range b.Objects {
		if err := apply(ctx, o); err != nil {
			t.Errorf("cart with session affinity: %s rejected: %v", ObjectID(o), err)
		}
	}

	// A tcp service's TCPRoute and an egress host's TLSRoute on Linkerd, at v1 for a v1.6
	// cluster and v1alpha2 for an older experimental one; this channel serves both.
	for _, g := range []schema.GatewayAPI{{Version: "v1.6"}, {Version: "v1.4", Channel: "experimental"}} {
		d := &schema.Design{Name: "db", Namespace: "shop",
			Services: map[string]schema.Service{"pg": {Port: 5432, Protocol: "tcp",
				Versions: map[string]schema.Version{"v1": {Labels: map[string]string{"version": "v1"}}},
				Routes:   []schema.Route{{To: map[string]int{"v1": 100}}}}},
			Egress: &schema.Egress{Policy: "registry-only", Hosts: []schema.EgressHost{{Host: "backup.example.net", Port: 443, Protocol: "tls"}}},
		}
		b, err := Render(ctx, d, &schema.Cluster{Name: "c", Mesh: schema.MeshLinkerd, GatewayAPI: g}, Options{Revision: "r"})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range b.Objects {
			if err := apply(ctx, o); err != nil {
				t.Errorf("tcp and tls routes for %s: %s %s rejected: %v", g, o.GetAPIVersion(), ObjectID(o), err)
			}
		}
	}

	// An authorization server on a host with no delegations (the ExternalAuth filter), header
	// matches by regular expression, and a route without backends.
	for i := range designs {
		if designs[i].Name != "platform" {
			continue
		}
		d := &designs[i]
		vh := d.Ingress.Hosts["www.example.com"]
		vh.Delegate, vh.ExtAuth = nil, &schema.ExtAuth{Service: "authz", Port: 9001}
		// and header matches beyond exact values, and a path closed at the edge
		vh.Routes[0].Headers = map[string]schema.HeaderMatch{"x-client": {Prefix: "mobile/"}, "x-beta": {Present: true}, "x-build": {Regex: "[0-9]+"}}
		vh.Routes = append(vh.Routes, schema.IngressRoute{Prefix: "/internal", Respond: &schema.Respond{Status: 403}})
		vh.TLS.ClientCA = &schema.ClientCA{Secret: "office-ca"}
		d.Ingress.Hosts["db.example.com"] = schema.VirtualHost{Passthrough: &schema.Passthrough{Backends: []schema.IngressBackend{{Service: "frontend", Weight: 100}}}}
		d.Ingress.Hosts["www.example.com"] = vh
		c := d.TargetClusters(fleet)[0]
		c.Ingress = "gateway-api"
		c.GatewayAPI = schema.GatewayAPI{Version: "v1.6", Channel: "experimental"}
		b, err := Render(ctx, d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatal(err)
		}
		filters := 0
		for _, o := range b.Objects {
			if err := apply(ctx, o); err != nil {
				t.Errorf("%s with extAuth: %s rejected: %v", d.Name, ObjectID(o), err)
			}
			data, _ := o.MarshalJSON()
			filters += strings.Count(string(data), `"type":"ExternalAuth"`)
		}
		if filters == 0 {
			t.Error("no ExternalAuth filter was rendered")
		}
	}
}
