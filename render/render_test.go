package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

var examples = []string{"shop", "fleet", "platform", "edge", "platform-edge"}

func loadExample(t *testing.T, name string) (*schema.Fleet, []schema.Design, fs.FS) {
	t.Helper()
	root, err := os.OpenRoot(filepath.Join("../examples", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	fleet, designs, err := schema.Load(context.Background(), root.FS(), schema.DefaultLoadOptions())
	if err != nil {
		t.Fatalf("examples/%s: %v", name, err)
	}
	return fleet, designs, root.FS()
}

// asMesh is the design's first target cluster, moved to another mesh: every example design is
// rendered for every provider.
func asMesh(t *testing.T, fleet *schema.Fleet, d *schema.Design, mesh schema.Mesh) schema.Cluster {
	t.Helper()
	targets := d.TargetClusters(fleet)
	if len(targets) == 0 {
		t.Fatalf("design %s targets no cluster", d.Name)
	}
	c := targets[0]
	c.Name, c.Mesh = string(mesh), mesh
	return c
}

// bundleText is a bundle as `meshcd render` prints it, or the render error, with warnings.
func bundleText(b *Bundle, err error) string {
	var buf bytes.Buffer
	if err != nil {
		fmt.Fprintf(&buf, "# error: %v\n", err)
		return buf.String()
	}
	for _, w := range b.Warnings {
		fmt.Fprintf(&buf, "# warning: %s\n", w)
	}
	fmt.Fprintf(&buf, "# digest: %s\n", b.Digest)
	for _, o := range b.Objects {
		data, _ := yaml.Marshal(o.Object)
		fmt.Fprintf(&buf, "---\n%s", data)
	}
	return buf.String()
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./render -update creates it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestGoldenPerProvider(t *testing.T) {
	for _, ex := range examples {
		fleet, designs, files := loadExample(t, ex)
		for i := range designs {
			d := &designs[i]
			for _, mesh := range []schema.Mesh{schema.MeshIstio, schema.MeshLinkerd, schema.MeshGatewayAPI} {
				t.Run(ex+"/"+d.Name+"/"+string(mesh), func(t *testing.T) {
					c := asMesh(t, fleet, d, mesh)
					b, err := Render(t.Context(), d, &c, Options{Revision: "0123abc", Repo: NewRepo(files)})
					var rerr *Error
					if err != nil && !errors.As(err, &rerr) {
						t.Fatalf("render error is %T, want *render.Error: %v", err, err)
					}
					checkGolden(t, filepath.Join("testdata", ex, d.Name+"."+string(mesh)+".yaml"), bundleText(b, err))
				})
			}
		}
	}
}

// TestGoldenPerCluster renders every example for each of its real target clusters, where
// per-cluster and per-selector overrides change weights, replicas and manifests.
func TestGoldenPerCluster(t *testing.T) {
	for _, ex := range examples {
		fleet, designs, files := loadExample(t, ex)
		for i := range designs {
			d := &designs[i]
			for _, c := range d.TargetClusters(fleet) {
				t.Run(ex+"/"+d.Name+"/"+c.Name, func(t *testing.T) {
					b, err := Render(t.Context(), d, &c, Options{Revision: "0123abc", Repo: NewRepo(files)})
					checkGolden(t, filepath.Join("testdata", "clusters", ex, d.Name, c.Name+".yaml"), bundleText(b, err))
				})
			}
		}
	}
}

func TestOverridesChangeTheDefaultRouteWeights(t *testing.T) {
	fleet, designs, _ := loadExample(t, "fleet")
	var payments *schema.Design
	for i := range designs {
		if designs[i].Name == "payments" {
			payments = &designs[i]
		}
	}
	weights := map[string]string{}
	for _, c := range payments.TargetClusters(fleet) {
		b, err := Render(t.Context(), payments, &c, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range b.Objects {
			if o.GetKind() == "VirtualService" || o.GetKind() == "GRPCRoute" {
				weights[c.Name] += fmt.Sprint(o.Object["spec"])
			}
		}
	}
	// staging 50/50; eu-west-1 99/1 (euw1-staging: both apply, the later eu-west-1 one wins); else 95/5.
	for cluster, want := range map[string][]string{
		"use1-prod":    {"weight:95", "weight:5]"},
		"use1-staging": {"weight:50", "weight:50"},
		"usw2-prod":    {"weight:95", "weight:5]"},
		"euw1-prod":    {"weight:99", "weight:1]"},
		"euw1-staging": {"weight:99", "weight:1]"},
	} {
		for _, w := range want {
			if !strings.Contains(weights[cluster], w) {
				t.Errorf("%s: routes %s do not contain %s", cluster, weights[cluster], w)
			}
		}
	}
}

func TestRenderIsDeterministicAndDigestIgnoresRevision(t *testing.T) {
	fleet, designs, _ := loadExample(t, "shop")
	d := &designs[0]
	c := d.TargetClusters(fleet)[0]
	a, err := Render(t.Context(), d, &c, Options{Revision: "aaa"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Render(t.Context(), d, &c, Options{Revision: "aaa"})
	if bundleText(a, nil) != bundleText(b, nil) {
		t.Fatal("two renders of the same inputs differ")
	}
	other, _ := Render(t.Context(), d, &c, Options{Revision: "bbb"})
	if other.Digest != a.Digest {
		t.Fatal("a new revision with the same content changed the bundle digest")
	}
	if other.Revision != "bbb" || bundleText(other, nil) != bundleText(a, nil) {
		t.Fatal("a new revision with the same content changed the objects, or the bundle lost its revision")
	}
	d.Services["checkout"].Routes[1].To["stable"] = 85
	d.Services["checkout"].Routes[1].To["canary"] = 15
	changed, _ := Render(t.Context(), d, &c, Options{Revision: "aaa"})
	if changed.Digest == a.Digest {
		t.Fatal("changing a weight did not change the digest")
	}
}

func TestRenderRefusesAnUntargetedCluster(t *testing.T) {
	fleet, designs, _ := loadExample(t, "shop")
	c := fleet.Clusters[0]
	c.Labels = map[string]string{"env": "dev"}
	_, err := Render(t.Context(), &designs[0], &c, DefaultOptions())
	if err == nil || !strings.Contains(err.Error(), "do not select this cluster") {
		t.Fatalf("err = %v", err)
	}
}

func TestMaskSecrets(t *testing.T) {
	s := newObject("v1", "Secret", "shop", "db", nil)
	s.Object["data"] = map[string]any{"password": "c2VjcmV0"}
	s.Object["stringData"] = map[string]any{"token": "hunter2"}
	cm := newObject("v1", "ConfigMap", "shop", "cfg", nil)
	cm.Object["data"] = map[string]any{"k": "visible"}
	out := MaskSecrets([]*unstructured.Unstructured{s, cm})
	text := fmt.Sprint(out[0].Object, out[1].Object)
	if strings.Contains(text, "c2VjcmV0") || strings.Contains(text, "hunter2") || !strings.Contains(text, "visible") {
		t.Fatalf("masked objects: %s", text)
	}
	if s.Object["data"].(map[string]any)["password"] != "c2VjcmV0" {
		t.Fatal("MaskSecrets changed its input")
	}
}

// TestRolloutMovesMeshAndEdgeWeights applies a rollout at 50% to the edge example's shop: the
// mesh route and the ingress claim that splits between checkout's versions both go 50/50.
func TestRolloutMovesMeshAndEdgeWeights(t *testing.T) {
	fleet, designs, files := loadExample(t, "edge")
	var d *schema.Design
	for i := range designs {
		if designs[i].Name == "shop" {
			d = &designs[i]
		}
	}
	half := 50
	d.Gates = map[string]schema.Gate{"canary": {Rollout: &schema.Rollout{Service: "checkout", Version: "canary", Steps: []int{50, 100}, Current: &half}}}
	c := d.TargetClusters(fleet)[0]
	c.Ingress = "contour"
	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	text := bundleText(b, nil)
	for _, kind := range []string{"HTTPProxy", "VirtualService"} {
		found := false
		for _, o := range b.Objects {
			if o.GetKind() != kind {
				continue
			}
			found = true
			data, _ := yaml.Marshal(o.Object)
			if strings.Contains(string(data), "weight: 80") || strings.Contains(string(data), "weight: 20") || !strings.Contains(string(data), "weight: 50") {
				t.Errorf("%s still carries the written weights:\n%s", kind, data)
			}
		}
		if !found {
			t.Fatalf("no %s rendered:\n%s", kind, text)
		}
	}
	if d.Services["checkout"].Routes[0].To["canary"] != 20 || d.Ingress.Claims[0].Routes[0].Backends[1].Weight != 20 {
		t.Error("rendering changed the design it was given")
	}
}

// TestMaskText: an error that quotes a Secret's value (as written, base64 or decoded) shows the
// mask; for a Secret, whatever the apiserver quotes as an invalid value is masked too.
func TestMaskText(t *testing.T) {
	objs, err := DecodeObjects([]byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {token: hunter2-token}\ndata: {key: " + base64.StdEncoding.EncodeToString([]byte("raw-key-bytes")) + ", short: " + base64.StdEncoding.EncodeToString([]byte("1")) + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := &Bundle{secrets: secretValues(objs)}
	for _, tc := range []struct {
		in     string
		secret bool
		want   string
	}{
		{`token hunter2-token refused`, false, `token ` + Masked + ` refused`},
		{`data[key]: Invalid value: "raw-key-bytes"`, false, `data[key]: Invalid value: "` + Masked + `"`},
		{`saw ` + base64.StdEncoding.EncodeToString([]byte("raw-key-bytes")), false, `saw ` + Masked},
		{`replicas: Invalid value: "x": must be a number`, false, `replicas: Invalid value: "x": must be a number`},
		{`data[.dockerconfigjson]: Invalid value: "{not json \"quoted\"}": invalid character`, true, `data[.dockerconfigjson]: Invalid value: ` + Masked + `: invalid character`},
		{`value 1 stays`, false, `value 1 stays`},
	} {
		if got := b.MaskText(tc.in, tc.secret); got != tc.want {
			t.Errorf("MaskText(%q, %v) = %q, want %q", tc.in, tc.secret, got, tc.want)
		}
	}
}

// TestSecretDigestIsKeyed: the digest annotation of a Secret is an HMAC with the renderer's
// key, so it confirms no guessed value to someone without the key; it is stable for one key
// and differs for another. Other objects keep a plain SHA-256.
func TestSecretDigestIsKeyed(t *testing.T) {
	objs, err := DecodeObjects([]byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {token: hunter2}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	digest := func(o *unstructured.Unstructured, key []byte) string {
		d, err := objectDigest(o, key)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	k1, k2 := NewSecretKey(), NewSecretKey()
	secret, cm := objs[0], objs[1]
	data, _ := json.Marshal(secret.Object)
	plain := sha256.Sum256(data)
	switch d := digest(secret, k1); {
	case !strings.HasPrefix(d, "hmac-sha256:"), strings.Contains(d, hex.EncodeToString(plain[:])):
		t.Errorf("Secret digest %s is not keyed", d)
	case d != digest(secret, k1):
		t.Errorf("one key, two digests")
	case d == digest(secret, k2):
		t.Errorf("two keys, one digest")
	}
	if d := digest(cm, k1); !strings.HasPrefix(d, "sha256:") || d != digest(cm, k2) {
		t.Errorf("ConfigMap digest %s depends on the Secret key", d)
	}
}

// TestMinimumTLSVersion: a host's tls.minVersion reaches Contour and Istio; Gateway API has no
// standard field for it, and rendering there without it would let older clients in, so it is
// an error naming the field. Plain HTTP to a TLS host is redirected to https everywhere.
func TestMinimumTLSVersion(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.TLS.MinVersion = "1.3"
	d.Ingress.Hosts["www.example.com"] = vh
	for provider, want := range map[string]string{"contour": "minimumProtocolVersion: \"1.3\"", "istio": "minProtocolVersion: TLSV1_3"} {
		c := d.TargetClusters(fleet)[0]
		c.Ingress = provider
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		if text := bundleText(b, nil); !strings.Contains(text, want) {
			t.Errorf("%s: no %s in:\n%s", provider, want, text)
		}
		if provider == "istio" && !strings.Contains(bundleText(b, nil), "httpsRedirect: true") {
			t.Error("istio: plain HTTP is not redirected to https")
		}
	}
	c := d.TargetClusters(fleet)[0]
	c.Ingress = "gateway-api"
	_, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err == nil || !strings.Contains(err.Error(), `ingress.hosts."www.example.com".tls.minVersion`) {
		t.Errorf("gateway-api with minVersion: %v, want an error naming the field", err)
	}
}

// TestRedirectPrefixAndPort: a redirect that swaps the matched prefix and sets a port reaches
// Contour and Gateway API; Istio replaces the whole path on a redirect, so there it is an
// error naming the route rather than a redirect somewhere else.
func TestRedirectPrefixAndPort(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.Routes = append([]schema.IngressRoute{{Prefix: "/old-shop", Redirect: &schema.Redirect{Prefix: "/shop", Port: 8443, Status: 308}}}, vh.Routes...)
	d.Ingress.Hosts["www.example.com"] = vh
	for provider, want := range map[string][]string{
		"contour":     {"prefix: /shop", "port: 8443", "statusCode: 308"},
		"gateway-api": {"replacePrefixMatch: /shop", "type: ReplacePrefixMatch", "port: 8443"},
	} {
		c := d.TargetClusters(fleet)[0]
		c.Ingress = provider
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		text := bundleText(b, nil)
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: no %q in:\n%s", provider, w, text)
			}
		}
	}
	c := d.TargetClusters(fleet)[0]
	c.Ingress = "istio"
	if _, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)}); err == nil || !strings.Contains(err.Error(), "www.example.com/old-shop: redirect.prefix") {
		t.Errorf("istio with a prefix redirect: %v, want an error naming the route", err)
	}
}

// edgeDesign is one design of examples/edge, with its fleet and files.
func edgeDesign(t *testing.T, name string) (*schema.Fleet, *schema.Design, fs.FS) {
	t.Helper()
	fleet, designs, files := loadExample(t, "edge")
	for i := range designs {
		if designs[i].Name == name {
			return fleet, &designs[i], files
		}
	}
	t.Fatalf("examples/edge has no design %s", name)
	return nil, nil, nil
}

// TestGatewayRetriesOnTheExperimentalChannel: a route's retries reach an HTTPRoute rule's
// retry (codes for the status conditions, the per-try timeout as backendRequest) only where
// the cluster serves Gateway API's experimental channel; conditions that are not status codes,
// and the standard channel's lack of retries, are warnings.
func TestGatewayRetriesOnTheExperimentalChannel(t *testing.T) {
	fleet, d, files := edgeDesign(t, "shop")
	c := d.TargetClusters(fleet)[0]
	c.Ingress = "gateway-api"
	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	if text := bundleText(b, nil); strings.Contains(text, "retry:") || !strings.Contains(text, "has no retries (the experimental channel has them from v1.2") {
		t.Errorf("standard channel: want no retry and a warning:\n%s", text)
	}
	c.GatewayAPI = schema.GatewayAPI{Version: "v1.6", Channel: "experimental"}
	b, err = Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	text := bundleText(b, nil)
	for _, want := range []string{
		"retry:\n      attempts: 2\n      codes:\n      - 500\n      - 501",
		"backendRequest: 2s",
		"request: 5s",
		"Gateway API retries on status codes only; reset are left to the controller's default",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("experimental channel: no %q in:\n%s", want, text)
		}
	}
	// A controller that does not list HTTPRouteRetry (Contour 1.33 takes backendRequest as the
	// whole request's timeout) gets no retry and no backendRequest.
	c.GatewayAPI.Features = []string{"HTTPRoute", "HTTPRouteRequestTimeout"}
	b, err = Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	if text := bundleText(b, nil); strings.Contains(text, "retry:") || strings.Contains(text, "backendRequest") || !strings.Contains(text, "does not list HTTPRouteRetry") {
		t.Errorf("without HTTPRouteRetry: want no retry and a warning:\n%s", text)
	}
}

// TestLocalRateLimits: a host's and a route's local rate limits reach Contour's
// rateLimitPolicy; Gateway API has no local rate limit, nor Istio without the cluster's opt-in
// to EnvoyFilters (TestIstioIngressRateLimits), and leaving it out would let every request
// through, so there it is an error naming the field.
func TestLocalRateLimits(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	vh.RateLimit = &schema.RateLimit{Requests: 100, Unit: "second", Burst: 20}
	vh.Routes[1].RateLimit = &schema.RateLimit{Requests: 10, Unit: "minute"}
	d.Ingress.Hosts["www.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	c.Ingress, c.Contour.ExternalNameServices = "contour", true
	b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
	if err != nil {
		t.Fatal(err)
	}
	text := bundleText(b, nil)
	for _, want := range []string{
		"    rateLimitPolicy:\n      local:\n        burst: 20\n        requests: 100\n        unit: second\n",
		"    rateLimitPolicy:\n      local:\n        requests: 10\n        unit: minute\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("contour: no %q in:\n%s", want, text)
		}
	}
	refusedBy(t, d, c, files, []string{"gateway-api", "istio"}, `ingress.hosts."www.example.com".rateLimit`, "no local rate limit")
}

// TestEdgeMethodAndQueryMatches: a route's method and query conditions (an exact value, a
// prefix, a regex, presence) reach every provider in its own words (Contour matches the method
// as Envoy's :method header; Istio and Gateway API say presence as the regex .*).
func TestEdgeMethodAndQueryMatches(t *testing.T) {
	fleet, d, files := edgeDesign(t, "search")
	vh := d.Ingress.Hosts["search.example.com"]
	vh.Routes[0].Method = "GET"
	vh.Routes[0].Query = map[string]schema.HeaderMatch{"mode": schema.ExactHeader("stream"), "lang": {Prefix: "en"}, "v": {Regex: "[0-9]+"}, "debug": {Present: true}}
	d.Ingress.Hosts["search.example.com"] = vh
	for provider, wants := range map[string][]string{
		"contour": {"- header:\n        exact: GET\n        name: :method", "- queryParameter:\n        exact: stream\n        name: mode",
			"- queryParameter:\n        name: lang\n        prefix: en\n", "- queryParameter:\n        name: v\n        regex: '[0-9]+'\n", "- queryParameter:\n        name: debug\n        present: true\n"},
		"gateway-api": {"method: GET", "- name: mode\n        type: Exact\n        value: stream", "- name: lang\n        type: RegularExpression\n        value: en.*\n",
			"- name: v\n        type: RegularExpression\n        value: '[0-9]+'\n", "- name: debug\n        type: RegularExpression\n        value: .*\n"},
		"istio": {"method:\n        exact: GET", "queryParams:\n        debug:\n          regex: .*\n        lang:\n          prefix: en\n        mode:\n          exact: stream\n        v:\n          regex: '[0-9]+'\n"},
	} {
		c := d.TargetClusters(fleet)[0]
		c.Ingress = provider
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		text := bundleText(b, nil)
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s: no %q in:\n%s", provider, want, text)
			}
		}
	}
}

// TestRetryStatusCodesAndBackoff: retried status codes and a backoff reach each edge provider
// in its own words (Istio reads numbers in retryOn, Contour needs retriable-status-codes beside
// the list, Gateway API's experimental retry has codes and backoff); Contour, which has no
// backoff, says so.
func TestRetryStatusCodesAndBackoff(t *testing.T) {
	fleet, d, files := edgeDesign(t, "shop")
	d.Ingress.Claims[0].Routes[0].Retries = &schema.Retries{Attempts: 2, On: []string{"5xx"}, Codes: []int{429}, Backoff: &schema.Duration{Text: "100ms"}}
	for _, tc := range []struct {
		provider string
		gateway  schema.GatewayAPI
		wants    []string
		warning  string
	}{
		{"contour", schema.GatewayAPI{}, []string{"retryPolicy:\n      count: 2\n      retriableStatusCodes:\n      - 429\n      retryOn:\n      - 5xx\n      - retriable-status-codes\n"}, "Contour has no retry backoff"},
		{"istio", schema.GatewayAPI{}, []string{"retries:\n      attempts: 2\n      backoff: 100ms\n      retryOn: 5xx,429\n"}, ""},
		{"gateway-api", schema.GatewayAPI{Version: "v1.6", Channel: "experimental"}, []string{"retry:\n      attempts: 2\n      backoff: 100ms\n      codes:\n      - 429\n      - 500\n"}, ""},
	} {
		c := d.TargetClusters(fleet)[0]
		c.Ingress, c.GatewayAPI = tc.provider, tc.gateway
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", tc.provider, err)
		}
		text := bundleText(b, nil)
		for _, want := range tc.wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s: no %q in:\n%s", tc.provider, want, text)
			}
		}
		if w := strings.Join(b.Warnings, "\n"); (tc.warning == "") != !strings.Contains(w, "backoff") || !strings.Contains(w, tc.warning) {
			t.Errorf("%s: warnings %q, want one saying %q", tc.provider, w, tc.warning)
		}
	}
}

// TestEdgeIdleTimeoutsAndHealthChecks: a route's idle timeout and active health check become
// Contour's timeoutPolicy.idle and healthCheckPolicy; Gateway API and Istio ingress, which
// have neither, say so in warnings.
func TestEdgeIdleTimeoutsAndHealthChecks(t *testing.T) {
	fleet, d, files := edgeDesign(t, "shop")
	r := &d.Ingress.Claims[0].Routes[0]
	r.IdleTimeout = &schema.Duration{Text: "30s"}
	r.HealthCheck = &schema.HealthCheck{Path: "/healthz", Interval: schema.Duration{Text: "10s", Duration: 10 * time.Second}, Timeout: schema.Duration{Text: "2s", Duration: 2 * time.Second}, UnhealthyThreshold: 3, HealthyThreshold: 2, Host: "checkout.internal"}
	for provider, want := range map[string]string{
		"contour":     "    healthCheckPolicy:\n      healthyThresholdCount: 2\n      host: checkout.internal\n      intervalSeconds: 10\n      path: /healthz\n      timeoutSeconds: 2\n      unhealthyThresholdCount: 3\n",
		"gateway-api": "",
		"istio":       "",
	} {
		c := d.TargetClusters(fleet)[0]
		c.Ingress = provider
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		text, warnings := bundleText(b, nil), strings.Join(b.Warnings, "\n")
		if want != "" {
			if !strings.Contains(text, want) || !strings.Contains(text, "      idle: 30s\n") {
				t.Errorf("%s: no health check and idle timeout in:\n%s", provider, text)
			}
			continue
		}
		if !strings.Contains(warnings, "idleTimeout: "+provider+" has no per-route idle timeout") || !strings.Contains(warnings, "healthCheck: "+provider+" has no active health checks") {
			t.Errorf("%s: warnings %q do not name the idle timeout and the health check", provider, warnings)
		}
	}
}

// TestGatewaySessionPersistence: session affinity by a cookie or a header becomes an HTTPRoute
// rule's sessionPersistence where the cluster serves Gateway API's experimental channel; by
// the caller's address, on the standard channel or on gRPC it is a warning.
func TestGatewaySessionPersistence(t *testing.T) {
	experimental := schema.GatewayAPI{Version: "v1.6", Channel: "experimental"}
	for _, tc := range []struct {
		name    string
		lb      schema.LoadBalancer
		gateway schema.GatewayAPI
		want    string // in the render; "" for a warning instead
	}{
		{"cookie with a lifetime", schema.LoadBalancer{Hash: &schema.LBHash{Cookie: &schema.LBCookie{Name: "shop-session", TTL: &schema.Duration{Text: "1h"}}}}, experimental,
			"    sessionPersistence:\n      absoluteTimeout: 1h\n      cookieConfig:\n        lifetimeType: Permanent\n      sessionName: shop-session\n      type: Cookie\n"},
		{"header", schema.LoadBalancer{Hash: &schema.LBHash{Header: "x-account"}}, experimental,
			"    sessionPersistence:\n      sessionName: x-account\n      type: Header\n"},
		{"caller's address", schema.LoadBalancer{Hash: &schema.LBHash{SourceIP: true}}, experimental, ""},
		{"standard channel", schema.LoadBalancer{Hash: &schema.LBHash{Header: "x-account"}}, schema.GatewayAPI{}, ""},
	} {
		d := &schema.Design{Name: "shop", Namespace: "shop", Services: map[string]schema.Service{"cart": {
			Port: 8080, Protocol: "http", LoadBalancer: &tc.lb,
			Versions: map[string]schema.Version{"v1": {Labels: map[string]string{"version": "v1"}}},
			Routes:   []schema.Route{{To: map[string]int{"v1": 100}}},
		}}}
		b, err := Render(t.Context(), d, &schema.Cluster{Name: "c", Mesh: schema.MeshGatewayAPI, GatewayAPI: tc.gateway}, Options{Revision: "r", Repo: NewRepo(nil)})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		text, warnings := bundleText(b, nil), strings.Join(b.Warnings, "\n")
		switch {
		case tc.want != "" && (!strings.Contains(text, tc.want) || strings.Contains(warnings, "loadBalancer")):
			t.Errorf("%s: no %q (or a warning %q) in:\n%s", tc.name, tc.want, warnings, text)
		case tc.want == "" && (strings.Contains(text, "sessionPersistence") || !strings.Contains(warnings, "loadBalancer")):
			t.Errorf("%s: want a warning and no sessionPersistence; warnings %q in:\n%s", tc.name, warnings, text)
		}
	}
}

// TestEdgeDirectResponses: a route that answers itself becomes Contour's directResponsePolicy
// and Istio's directResponse; Gateway API has none, so an error status becomes a route without
// backends (the controller answers 500, said in a warning) and any other status an error.
func TestEdgeDirectResponses(t *testing.T) {
	fleet, d, files := edgeDesign(t, "platform")
	vh := d.Ingress.Hosts["www.example.com"]
	closed := schema.IngressRoute{Prefix: "/internal", Respond: &schema.Respond{Status: 403, Body: "closed"}}
	vh.Routes = append([]schema.IngressRoute{closed}, vh.Routes...)
	d.Ingress.Hosts["www.example.com"] = vh
	for provider, want := range map[string]string{
		"contour":     "    directResponsePolicy:\n      body: closed\n      statusCode: 403\n",
		"istio":       "  - directResponse:\n      body:\n        string: closed\n      status: 403\n",
		"gateway-api": "  - matches:\n    - path:\n        type: PathPrefix\n        value: /internal\n  - backendRefs:",
	} {
		c := d.TargetClusters(fleet)[0]
		c.Ingress, c.Contour.ExternalNameServices = provider, true
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		if text := bundleText(b, nil); !strings.Contains(text, want) {
			t.Errorf("%s: no %q in:\n%s", provider, want, text)
		}
		if w := strings.Join(b.Warnings, "\n"); (provider == "gateway-api") != strings.Contains(w, "answers 500 instead of 403") {
			t.Errorf("%s: warnings %q", provider, w)
		}
	}
	vh.Routes[0].Respond.Status = 200
	d.Ingress.Hosts["www.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	refusedBy(t, d, c, files, []string{"gateway-api"}, `ingress.hosts."www.example.com".routes[0].respond`, "answers 500, not 200")
}

// TestEdgeHeaderMatches: header matches beyond an exact value reach each provider in its own
// words (Contour's regex, present and notpresent; Istio's prefix, regex and withoutHeaders;
// Gateway API's RegularExpression), and an absence Gateway API cannot match is refused.
func TestEdgeHeaderMatches(t *testing.T) {
	fleet, d, files := edgeDesign(t, "search")
	vh := d.Ingress.Hosts["search.example.com"]
	vh.Routes[0].Headers = map[string]schema.HeaderMatch{
		"x-beta":   {Present: true},
		"x-client": {Prefix: "mobile/"},
		"x-build":  {Regex: "[0-9]+"},
		"x-team":   schema.ExactHeader("search"),
	}
	d.Ingress.Hosts["search.example.com"] = vh
	for provider, wants := range map[string][]string{
		"contour": {"- header:\n        name: x-beta\n        present: true\n", "- header:\n        name: x-build\n        regex: '[0-9]+'\n",
			"- header:\n        name: x-client\n        regex: mobile/.*\n", "- header:\n        exact: search\n        name: x-team\n"},
		"istio": {"headers:\n        x-beta:\n          regex: .*\n        x-build:\n          regex: '[0-9]+'\n        x-client:\n          prefix: mobile/\n        x-team:\n          exact: search\n"},
		"gateway-api": {"- name: x-beta\n        type: RegularExpression\n        value: .*\n", "- name: x-client\n        type: RegularExpression\n        value: mobile/.*\n",
			"- name: x-team\n        type: Exact\n        value: search\n"},
	} {
		c := d.TargetClusters(fleet)[0]
		c.Ingress = provider
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		text := bundleText(b, nil)
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s: no %q in:\n%s", provider, want, text)
			}
		}
	}
	vh.Routes[0].Headers = map[string]schema.HeaderMatch{"x-legacy": {Absent: true}}
	d.Ingress.Hosts["search.example.com"] = vh
	c := d.TargetClusters(fleet)[0]
	for provider, want := range map[string]string{"contour": "        name: x-legacy\n        notpresent: true\n", "istio": "withoutHeaders:\n        x-legacy:\n          regex: .*\n"} {
		c.Ingress = provider
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		if text := bundleText(b, nil); !strings.Contains(text, want) {
			t.Errorf("%s: no %q in:\n%s", provider, want, text)
		}
	}
	refusedBy(t, d, c, files, []string{"gateway-api"}, `ingress.hosts."search.example.com".routes[0].headers."x-legacy"`, "cannot match a header's absence")
}

// TestEdgeGRPCRoutes: a route for a gRPC service or method matches the calls' path,
// /<service>/<method>, on every provider, and reaches the gRPC service over HTTP/2 (Contour's
// h2c protocol; the version Services' kubernetes.io/h2c appProtocol for the others).
func TestEdgeGRPCRoutes(t *testing.T) {
	d := &schema.Design{Name: "shop", Namespace: "shop",
		Services: map[string]schema.Service{"cart": {Port: 9090, Protocol: "grpc",
			Versions: map[string]schema.Version{"v1": {Labels: map[string]string{"version": "v1"}}},
			Routes:   []schema.Route{{To: map[string]int{"v1": 100}}}}},
		Ingress: &schema.Ingress{Hosts: map[string]schema.VirtualHost{"api.example.com": {Routes: []schema.IngressRoute{
			{Prefix: "/", GRPC: &schema.GRPCMatch{Service: "shop.v1.Cart", Method: "Checkout"}, Backends: []schema.IngressBackend{{Service: "cart", Version: "v1", Weight: 100}}},
			{Prefix: "/", GRPC: &schema.GRPCMatch{Service: "shop.v1.Cart"}, Backends: []schema.IngressBackend{{Service: "cart", Weight: 100}}},
		}}}},
	}
	for provider, wants := range map[string][]string{
		"contour":     {"    - exact: /shop.v1.Cart/Checkout\n", "    - prefix: /shop.v1.Cart/\n", "      protocol: h2c\n"},
		"gateway-api": {"        type: PathPrefix\n        value: /shop.v1.Cart/Checkout\n", "  - appProtocol: kubernetes.io/h2c\n    name: grpc\n"},
		"istio":       {"    - uri:\n        exact: /shop.v1.Cart/Checkout\n", "    - uri:\n        prefix: /shop.v1.Cart/\n"},
	} {
		c := &schema.Cluster{Name: "c", Mesh: schema.MeshIstio, Ingress: provider}
		b, err := Render(t.Context(), d, c, Options{Revision: "r", Repo: NewRepo(nil)})
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		text := bundleText(b, nil)
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s: no %q in:\n%s", provider, want, text)
			}
		}
	}
}

// TestEdgeClientCertificates: a host that checks client certificates gets Contour's
// clientValidation, Istio's MUTUAL mode (whose CA must sit where Istio reads it), and Gateway
// API's Gateway-wide frontend validation, which every TLS host of the Gateway must share.
func TestEdgeClientCertificates(t *testing.T) {
	fleet, d, files := edgeDesign(t, "search")
	vh := d.Ingress.Hosts["search.example.com"]
	vh.TLS.ClientCA = &schema.ClientCA{Secret: "wildcard-tls-cacert"}
	d.Ingress.Hosts["search.example.com"] = vh
	for provider, want := range map[string]string{
		"contour":     "      clientValidation:\n        caSecret: wildcard-tls-cacert\n",
		"istio":       "      credentialName: wildcard-tls\n      mode: MUTUAL\n",
		"gateway-api": "  tls:\n    frontend:\n      default:\n        validation:\n          caCertificateRefs:\n          - group: \"\"\n            kind: Secret\n            name: wildcard-tls-cacert\n",
	} {
		c := d.TargetClusters(fleet)[0]
		c.Ingress = provider
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		if text := bundleText(b, nil); !strings.Contains(text, want) {
			t.Errorf("%s: no %q in:\n%s", provider, want, text)
		}
	}
	c := d.TargetClusters(fleet)[0]
	c.GatewayAPI = schema.GatewayAPI{Version: "v1.3"}
	refusedBy(t, d, c, files, []string{"gateway-api"}, `ingress.hosts."search.example.com".tls.clientCA`, "from v1.5")
	vh.TLS.ClientCA = &schema.ClientCA{Secret: "office-ca", Optional: true}
	d.Ingress.Hosts["search.example.com"] = vh
	c.GatewayAPI = schema.GatewayAPI{}
	refusedBy(t, d, c, files, []string{"istio"}, `ingress.hosts."search.example.com".tls.clientCA.secret`, "wildcard-tls-cacert")
	refusedBy(t, d, c, files, []string{"gateway-api"}, `ingress.hosts."search.example.com".tls.clientCA.optional`, "experimental fallback")
}

// TestEdgeTLSPassthrough: a passthrough host's TLS connections go, unopened, to its services:
// Contour's tcpproxy behind a passthrough virtual host, a Gateway API TLS listener in
// Passthrough mode with a TLSRoute (v1 from Gateway API v1.5, v1alpha2 on the experimental
// channel before), and an Istio PASSTHROUGH server with a tls route by SNI.
func TestEdgeTLSPassthrough(t *testing.T) {
	fleet, d, files := edgeDesign(t, "search")
	d.Ingress.Hosts["db.example.com"] = schema.VirtualHost{Passthrough: &schema.Passthrough{Backends: []schema.IngressBackend{{Service: "query", Version: "stable", Weight: 100}}}}
	for _, tc := range []struct {
		provider string
		gateway  schema.GatewayAPI
		wants    []string
	}{
		{"contour", schema.GatewayAPI{}, []string{"  tcpproxy:\n    services:\n    - name: query-stable\n      port: 8080\n      weight: 100\n  virtualhost:\n    fqdn: db.example.com\n    tls:\n      passthrough: true\n"}},
		{"gateway-api", schema.GatewayAPI{}, []string{"  - allowedRoutes:\n      kinds:\n      - kind: TLSRoute\n      namespaces:\n        from: Same\n    hostname: db.example.com\n    name: db-example-com\n    port: 443\n    protocol: TLS\n    tls:\n      mode: Passthrough\n",
			"apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\n"}},
		{"gateway-api", schema.GatewayAPI{Version: "v1.3", Channel: "experimental"}, []string{"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\n"}},
		{"istio", schema.GatewayAPI{}, []string{"  - hosts:\n    - search/db.example.com\n    port:\n      name: tls-db-example-com\n      number: 443\n      protocol: TLS\n    tls:\n      mode: PASSTHROUGH\n",
			"  tls:\n  - match:\n    - port: 443\n      sniHosts:\n      - db.example.com\n    route:\n    - destination:\n        host: query.search.svc.cluster.local\n        port:\n          number: 8080\n        subset: stable\n      weight: 100\n"}},
	} {
		c := d.TargetClusters(fleet)[0]
		c.Ingress, c.GatewayAPI = tc.provider, tc.gateway
		b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(files)})
		if err != nil {
			t.Fatalf("%s: %v", tc.provider, err)
		}
		text := bundleText(b, nil)
		for _, want := range tc.wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s (%s): no %q in:\n%s", tc.provider, tc.gateway, want, text)
			}
		}
	}
	c := d.TargetClusters(fleet)[0]
	c.GatewayAPI = schema.GatewayAPI{Version: "v1.3"}
	refusedBy(t, d, c, files, []string{"gateway-api"}, `ingress.hosts."db.example.com".passthrough`, "TLSRoute is standard from Gateway API v1.5")
}
