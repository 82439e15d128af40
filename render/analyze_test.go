package render

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// explainedIstioWarnings are istioctl analyze warnings meshcd leaves in its Istio renders on
// purpose, by code; the README explains each one (checked below). Empty today: every render
// of the examples analyzes clean.
var explainedIstioWarnings = map[string]bool{}

// TestIstioAnalyzersAcceptEveryIstioRender runs Istio's own analyzers (istioctl analyze, built
// from the istio.io/istio module by make testbin) over every Istio render of examples/: each
// example's designs for every cluster running Istio as mesh or ingress, and each design as if
// its clusters ran Istio for both, all of one cluster's objects analyzed together so references
// across designs (a claim's route on the owner's Gateway) are checked. No error, and no warning
// the README does not explain.
func TestIstioAnalyzersAcceptEveryIstioRender(t *testing.T) {
	analyzed := 0
	for _, ex := range examples {
		fleet, designs, fsys := loadExample(t, ex)
		perCluster := map[string][]*unstructured.Unstructured{}
		for i := range designs {
			d := &designs[i]
			clusters := []schema.Cluster{asMesh(t, fleet, d, schema.MeshIstio)}
			if d.Ingress != nil {
				clusters[0].Ingress = "istio"
			}
			for _, c := range d.TargetClusters(fleet) {
				if c.Mesh == schema.MeshIstio || c.Ingress == "istio" {
					clusters = append(clusters, c)
				}
			}
			for _, c := range clusters {
				b, err := Render(t.Context(), d, &c, Options{Revision: "0123abc", Repo: NewRepo(fsys)})
				var rerr *Error
				if errors.As(err, &rerr) {
					continue // a feature Istio cannot express; the golden files record it
				}
				if err != nil {
					t.Fatal(err)
				}
				perCluster[c.Name] = append(perCluster[c.Name], b.Objects...)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(perCluster)) {
			msgs, err := testenv.IstioAnalyze(t.Context(), perCluster[name])
			if err != nil {
				t.Fatal(err)
			}
			analyzed++
			for _, m := range msgs {
				if m.Level == "Info" || (m.Level == "Warning" && explainedIstioWarnings[m.Code]) {
					continue
				}
				t.Errorf("%s on %s: istioctl analyze: %s", ex, name, m)
			}
		}
	}
	if analyzed < 10 {
		t.Fatalf("only %d Istio renders; the examples make more", analyzed)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for code := range explainedIstioWarnings {
		if !strings.Contains(string(readme), code) {
			t.Errorf("warning %s is left in Istio renders, but the README does not explain it", code)
		}
	}
	t.Logf("%d Istio renders analyzed", analyzed)
}

// TestIstioAnalyzersCatchWhatTheyShould keeps the check above honest: a VirtualService whose
// Gateway and subset exist nowhere is an error to the same analyzers.
func TestIstioAnalyzersCatchWhatTheyShould(t *testing.T) {
	bad := newObject("networking.istio.io/v1", "VirtualService", "shop", "bad", map[string]any{
		"hosts": []any{"www.example.com"}, "gateways": []any{"edge/ingress"},
		"http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "checkout.shop.svc.cluster.local", "subset": "v9"}}}}},
	})
	msgs, err := testenv.IstioAnalyze(t.Context(), []*unstructured.Unstructured{bad})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range msgs {
		found = found || (m.Level == "Error" && m.Code == "IST0101")
	}
	if !found {
		t.Fatalf("istioctl analyze passed a VirtualService with a missing Gateway: %v", msgs)
	}
}

// TestIstioAnalyzersAcceptExactAndRegexPaths: exact and regex uri matches, a whole-path
// rewrite and a regex rewrite on Istio ingress pass the same analyzers.
func TestIstioAnalyzersAcceptExactAndRegexPaths(t *testing.T) {
	d := pathsDesign(&schema.Rewrite{Path: "/healthz"})
	d.Ingress.Hosts["www.example.com"].Routes[1].Rewrite = &schema.Rewrite{Regex: &schema.RegexRewrite{Match: "^/api/(v[0-9]+)/(.*)$", Substitution: "/\\2"}}
	// and query parameters matched every way
	d.Ingress.Hosts["www.example.com"].Routes[0].Query = map[string]schema.HeaderMatch{"tab": {Prefix: "new"}, "v": {Regex: "[0-9]+"}, "debug": {Present: true}}
	c := schema.Cluster{Name: "istio", Mesh: schema.MeshIstio, Ingress: "istio"}
	b, err := Render(t.Context(), d, &c, Options{Revision: "r"})
	if err != nil {
		t.Fatal(err)
	}
	analyzeClean(t, b.Objects)
}

// TestIstioAnalyzersAcceptTheRateLimitFilter: the EnvoyFilter of a service's rate limit, with
// its token policy beside it, passes the analyzers (a relative insert needs a priority, IST0151)
// but for the warning every EnvoyFilter gets, which is why a cluster opts in to them.
func TestIstioAnalyzersAcceptTheRateLimitFilter(t *testing.T) {
	c := schema.Cluster{Name: "istio", Mesh: schema.MeshIstio, Istio: schema.IstioConfig{EnvoyFilters: true, ExtAuthProviders: []string{"opa"}}}
	d := meshPolicyDesign()
	svc := d.Services["orders"]
	svc.ExtAuth = &schema.MeshExtAuth{Provider: "opa", SkipPaths: []string{"/healthz"}} // and an external authorization server
	d.Services["orders"] = svc
	b, err := Render(t.Context(), d, &c, Options{Revision: "r"})
	if err != nil {
		t.Fatal(err)
	}
	analyzeCautioned(t, b.Objects, "EnvoyFilter orders/orders-ratelimit")
}

// TestIstioAnalyzersAcceptTheIngressRateLimits: the gateway's EnvoyFilters for an owner's host
// and route limits and for a team's route limit, beside the owner's token and address policies
// and the VirtualServices whose routes they name, pass the analyzers but for the EnvoyFilter
// warning.
func TestIstioAnalyzersAcceptTheIngressRateLimits(t *testing.T) {
	d, shop, c, files := rateLimitedDesigns(t, "istio-system")
	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Render(t.Context(), shop, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	analyzeCautioned(t, append(b.Objects, sb.Objects...), "EnvoyFilter istio-system/ingress-ratelimit-edge", "EnvoyFilter istio-system/ingress-ratelimit-shop")
}

// analyzeCautioned runs istioctl analyze over the objects and fails on anything but information,
// the warnings the README explains, and the caution every EnvoyFilter gets, which each of
// these must get.
func analyzeCautioned(t *testing.T, objs []*unstructured.Unstructured, envoyFilters ...string) {
	t.Helper()
	msgs, err := testenv.IstioAnalyze(t.Context(), objs)
	if err != nil {
		t.Fatal(err)
	}
	cautioned := map[string]bool{}
	for _, m := range msgs {
		if m.Level == "Info" || (m.Level == "Warning" && explainedIstioWarnings[m.Code]) {
			continue
		}
		if m.Code == "IST0133" && slices.Contains(envoyFilters, m.Origin) && strings.Contains(m.Message, "EnvoyFilter exposes internal implementation details") {
			cautioned[m.Origin] = true
			continue
		}
		t.Errorf("istioctl analyze: %s", m)
	}
	for _, f := range envoyFilters {
		if !cautioned[f] {
			t.Errorf("istioctl analyze no longer cautions against %s (%v); the opt-in's reason in the README may be out of date", f, msgs)
		}
	}
}

// TestIstioAnalyzersAcceptTheIngressPolicies: a host's JWT and address rules on Istio ingress,
// with their policies in the gateway's namespace, pass the analyzers.
func TestIstioAnalyzersAcceptTheIngressPolicies(t *testing.T) {
	d, c, files := gatewayPoliciesDesign(t, "istio-system")
	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	analyzeClean(t, b.Objects)
}

// analyzeClean runs istioctl analyze over the objects and fails on anything but information
// and the warnings the README explains.
func analyzeClean(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	msgs, err := testenv.IstioAnalyze(t.Context(), objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Level == "Info" || (m.Level == "Warning" && explainedIstioWarnings[m.Code]) {
			continue
		}
		t.Errorf("istioctl analyze: %s", m)
	}
}
